using MaeMl.Model;

namespace MaeMl.Training;

/// <summary>Settings of an MAE pretraining run (names and defaults of the official <c>main_pretrain.py</c>).</summary>
public sealed record PretrainOptions
{
    /// <summary>Folder of images, searched recursively; class subfolders are ignored.</summary>
    public required string DataDir { get; init; }
    /// <summary>Where checkpoints, metrics.jsonl, loss-curve.png go.</summary>
    public required string OutputDir { get; init; }
    /// <summary>Architecture, mask ratio and loss (<c>--model</c>, <c>--mask_ratio</c>, <c>--norm_pix_loss</c>; default
    /// <c>mae_vit_tiny_patch4_img32</c>, the CPU reference, where the official default is <c>mae_vit_large_patch16</c>).</summary>
    public MaeConfig Model { get; init; } = MaePresets.MaeVitTinyPatch4Img32Dec128d2b;
    /// <summary>Training epochs (<c>--epochs</c>, default 400).</summary>
    public int Epochs { get; init; } = 400;
    /// <summary>Epochs of linear lr warmup, fractional allowed (<c>--warmup_epochs</c>, default 40).</summary>
    public double WarmupEpochs { get; init; } = 40;
    /// <summary>Images per forward/backward.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Gradient accumulation steps: effective batch = BatchSize x AccumIter.</summary>
    public int AccumIter { get; init; } = 1;
    /// <summary>base lr: absolute lr = blr x effective batch / 256.</summary>
    public double BaseLr { get; init; } = 1.5e-4;
    /// <summary>Absolute lr; overrides <see cref="BaseLr"/> when set.</summary>
    public double? Lr { get; init; }
    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>, default 0).</summary>
    public double MinLr { get; init; }
    /// <summary>AdamW weight decay of weights, not of biases and 1-D tensors (<c>--weight_decay</c>, default 0.05).</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Seeds the initial weights, data order, augmentation and masks (<c>--seed</c>, default 0).</summary>
    public int Seed { get; init; }
    /// <summary>RandomResizedCrop minimum area fraction.</summary>
    public double MinCropScale { get; init; } = 0.2;
    /// <summary>Batches decoded ahead.</summary>
    public int Prefetch { get; init; } = 6;
    /// <summary>Use at most this many images (evenly spaced), for quick runs.</summary>
    public int? Limit { get; init; }
    /// <summary>Also keep checkpoint-epochN.maeml every N epochs (0: only checkpoint-last).</summary>
    public int SaveEveryEpochs { get; init; }
    /// <summary>Mid-epoch checkpoint interval, so a kill loses at most this much work.</summary>
    public double CheckpointMinutes { get; init; } = 5;
    /// <summary>Stop cleanly (with a checkpoint) after this long; resume later with <see cref="Resume"/>.</summary>
    public TimeSpan? TimeLimit { get; init; }
    /// <summary>Checkpoint to continue from, or "auto" for OutputDir/checkpoint-last.maeml when it exists.</summary>
    public string? Resume { get; init; }
    /// <summary>Continued pretraining: start a new run from the weights of any MAE file (official <c>.pth</c> with its decoder, Hugging
    /// Face ViTMAE safetensors, <c>.maeml</c>) with a fresh schedule and optimizer. The architecture comes from the file (heads and
    /// loss settings through <see cref="InitLoad"/>), the image size from <see cref="InitLoad"/>'s <c>ImageSize</c> (position tables
    /// interpolated) or the file's own; an encoder-only file gets a freshly initialised decoder. <see cref="Model"/> is ignored, except
    /// its mask ratio and pixel normalisation. When <see cref="Resume"/> finds a checkpoint, that exact continuation wins.</summary>
    public string? Init { get; init; }
    /// <summary>How <see cref="Init"/> is read (heads, preset, image size); null: everything the file tells, decoder optional.</summary>
    public Interop.MaeLoadOptions? InitLoad { get; init; }
    /// <summary>Compute precision: float32, bfloat16 with float32 master weights, or <see cref="TrainingPrecision.Auto"/> (default): the
    /// faster of the two for this architecture on this machine, measured (<see cref="PrecisionProbe"/>).</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;
    /// <summary>Torch intra-op threads (0: library default).</summary>
    public int Threads { get; init; }
    /// <summary>Training device: <c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c> (needs a CUDA LibTorch package instead of TorchSharp-cpu;
    /// untested on GPUs by MaeMl's own tests).</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Images per optimizer step: <see cref="BatchSize"/> x <see cref="AccumIter"/>.</summary>
    public int EffectiveBatchSize => BatchSize * AccumIter;
    /// <summary>The lr at the end of warmup: <see cref="Lr"/>, or <see cref="BaseLr"/> x <see cref="EffectiveBatchSize"/> / 256.</summary>
    public double PeakLr => Lr ?? LearningRateSchedule.ScaledLr(BaseLr, EffectiveBatchSize);

    /// <summary>Returns these options if they are consistent; throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public PretrainOptions Validate()
    {
        Model.Validate();
        if (Epochs <= 0) throw new ArgumentException($"epochs must be positive, got {Epochs}");
        if (!(WarmupEpochs >= 0) || !double.IsFinite(WarmupEpochs)) throw new ArgumentException($"warmup epochs must be a number >= 0, got {WarmupEpochs}");
        if (BatchSize <= 0 || AccumIter <= 0) throw new ArgumentException($"batch size ({BatchSize}) and accum iter ({AccumIter}) must be positive");
        if (!(PeakLr > 0) || !double.IsFinite(PeakLr))
            throw new ArgumentException($"learning rate (lr) must be a positive finite number, got {PeakLr}" + (Lr is null ? $" from blr {BaseLr}" : ""));
        if (!(MinLr >= 0) || MinLr > PeakLr) throw new ArgumentException($"min lr must be in [0, lr {PeakLr:G3}], got {MinLr}");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) throw new ArgumentException($"weight decay must be a finite number >= 0, got {WeightDecay}");
        if (!(MinCropScale > 0 && MinCropScale <= 1)) throw new ArgumentException($"min crop scale must be in (0, 1], got {MinCropScale}");
        if (Limit is < 0) throw new ArgumentException($"limit must be positive (or absent), got {Limit}");
        if (SaveEveryEpochs < 0) throw new ArgumentException($"save every (epochs) must be >= 0, got {SaveEveryEpochs}");
        if (!(CheckpointMinutes >= 0) || double.IsNaN(CheckpointMinutes)) throw new ArgumentException($"checkpoint minutes must be >= 0, got {CheckpointMinutes}");
        if (Prefetch < 0) throw new ArgumentException($"prefetch must be >= 0, got {Prefetch}");
        if (TimeLimit is { } t && t < TimeSpan.Zero) throw new ArgumentException($"time limit must not be negative, got {t}");
        CheckThreads(Threads);
        TrainingDevice.Resolve(Device);
        return this;
    }

    /// <summary>Torch threads: 0 (the library default) or 1 to 4x the processor count; more only thrashes (or fails to start).</summary>
    public static void CheckThreads(int threads)
    {
        int max = 4 * Environment.ProcessorCount;
        if (threads < 0 || threads > max) throw new ArgumentException($"threads must be 0 (default) or 1..{max} (4x the {Environment.ProcessorCount} processors), got {threads}");
    }
}

/// <summary>Arithmetic precision of training steps.</summary>
public enum TrainingPrecision
{
    /// <summary>float32 throughout (the official recipe's arithmetic).</summary>
    Float32,
    /// <summary>bfloat16 forward/backward on a working copy, float32 master weights, optimizer and loss.</summary>
    BFloat16,
    /// <summary>The faster of <see cref="Float32"/> and <see cref="BFloat16"/> for the model on this machine, measured by
    /// <see cref="PrecisionProbe"/> (bfloat16 is only tried where the CPU has AVX512-BF16 or AMX).</summary>
    Auto,
}

/// <summary>What the CPU offers for reduced-precision training.</summary>
public static class CpuFeatures
{
    static readonly Lazy<bool> bf16 = new(() =>
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return false;
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags")) ?? "";
            var set = flags.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            return set.Contains("avx512_bf16") || set.Contains("amx_bf16");
        }
        catch (IOException) { return false; }
    });

    /// <summary>True when the CPU has AVX512-BF16 or AMX-BF16 instructions (read from /proc/cpuinfo on Linux).</summary>
    public static bool HasNativeBFloat16 => bf16.Value;

}
