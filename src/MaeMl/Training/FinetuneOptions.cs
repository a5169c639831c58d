using MaeMl.Data;
using MaeMl.Model;

namespace MaeMl.Training;

/// <summary>
/// Settings of a fine-tuning run, named as the official <c>main_finetune.py</c>. The defaults are the paper's ViT-B
/// ImageNet recipe except the batch (64 x accum 16 = 1024); <see cref="SmallImages"/> adapts them to 32x32 data such as CIFAR-10.
/// </summary>
public sealed record FinetuneOptions : ClassificationRunOptions
{
    /// <summary>Global average pooling + <c>fc_norm</c> (MAE's fine-tuning default) instead of the cls token.</summary>
    public bool GlobalPool { get; init; } = true;
    /// <summary>Training epochs (<c>--epochs</c>, default 100).</summary>
    public int Epochs { get; init; } = 100;
    /// <summary>Epochs of linear lr warmup, fractional allowed (<c>--warmup_epochs</c>, default 5).</summary>
    public double WarmupEpochs { get; init; } = 5;
    /// <summary>Images per forward/backward (<c>--batch_size</c>, default 64); also the validation batch.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Gradient accumulation: effective batch = BatchSize x AccumIter.</summary>
    public int AccumIter { get; init; } = 16;
    /// <summary>lr = blr x effective batch / 256 (paper: 5e-4 for ViT-B, 1e-3 for L/H).</summary>
    public double BaseLr { get; init; } = 5e-4;
    /// <summary>Absolute lr (<c>--lr</c>); overrides <see cref="BaseLr"/> when set.</summary>
    public double? Lr { get; init; }
    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>, default 1e-6).</summary>
    public double MinLr { get; init; } = 1e-6;
    /// <summary>AdamW weight decay (<c>--weight_decay</c>, default 0.05); none for biases, 1-D tensors, <c>pos_embed</c> and <c>cls_token</c>.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Layer-wise lr decay (paper: 0.65 ViT-B, 0.75 ViT-L/H); 1 disables it.</summary>
    public double LayerDecay { get; init; } = 0.65;
    /// <summary>Stochastic depth of the last block (linearly increasing over blocks).</summary>
    public double DropPath { get; init; } = 0.1;
    /// <summary>Compute precision: <see cref="TrainingPrecision.Float32"/> (default), bfloat16 with float32 master weights, or
    /// <see cref="TrainingPrecision.Auto"/>: the faster of the two here, measured on the encoder's full-sequence step
    /// (<see cref="PrecisionProbe"/>; every token through the encoder, as fine-tuning runs it) and cached. Evaluation runs in float32.</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Float32;
    /// <summary>Gradient-norm clipping; null (the official default) for none.</summary>
    public double? ClipGrad { get; init; }
    /// <summary>Validate after every this many epochs and after the last (default 1, every epoch, as <c>main_finetune.py</c>): a small
    /// training set with a large validation set spends as long validating as training.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>Mixup, cutmix and label smoothing (default: <c>--mixup 0.8 --cutmix 1.0 --smoothing 0.1</c>); <see cref="MixupOptions.None"/> for plain cross entropy.</summary>
    public MixupOptions Mixup { get; init; } = new();
    /// <summary>RandAugment policy; null for none. Default rand-m9-mstd0.5-inc1.</summary>
    public RandAugment? RandAugment { get; init; } = new();
    /// <summary>RandomErasing probability ('pixel' mode, one box); 0 for none.</summary>
    public double RandomErasingProb { get; init; } = 0.25;
    /// <summary>RandomResizedCrop minimum area fraction.</summary>
    public double MinCropScale { get; init; } = 0.08;
    /// <summary>Evaluation crop: resize the shorter side to size / pct, center crop (0.875 as ImageNet; 1 for images already at the model size).</summary>
    public double EvalCropPct { get; init; } = 224.0 / 256.0;
    /// <summary>Mid-epoch checkpoint interval in minutes (default 5), so a kill loses at most this much work; 0 saves at every optimizer step.</summary>
    public double CheckpointMinutes { get; init; } = 5;
    /// <summary>Stop cleanly (with a checkpoint) after this long; the schedule is not shortened, <see cref="Resume"/> finishes it.</summary>
    public TimeSpan? TimeLimit { get; init; }
    /// <summary>Checkpoint to continue from, or "auto" for OutputDir/checkpoint-last.maeml when it exists.</summary>
    public string? Resume { get; init; }

    /// <summary>Images per optimizer step: <see cref="BatchSize"/> x <see cref="AccumIter"/>.</summary>
    public int EffectiveBatchSize => BatchSize * AccumIter;
    /// <summary>The lr at the end of warmup: <see cref="Lr"/>, or <see cref="BaseLr"/> x <see cref="EffectiveBatchSize"/> / 256.</summary>
    public double PeakLr => Lr ?? LearningRateSchedule.ScaledLr(BaseLr, EffectiveBatchSize);

    /// <summary>The paper's ViT-B/16 ImageNet recipe (100 epochs, blr 5e-4, layer decay 0.65, drop path 0.1, batch 1024).</summary>
    public static FinetuneOptions PaperVitBase(string trainDir, string outputDir) => new() { TrainDir = trainDir, OutputDir = outputDir };

    /// <summary>The recipe adapted to 32x32 images (CIFAR-10, patch-4 presets): 100 epochs, batch 128 (no accumulation), blr 1e-3,
    /// layer decay 0.75, drop path 0.1, warmup 5, evaluation without crop; mixup, cutmix, RandAugment and erasing as the paper.</summary>
    public static FinetuneOptions SmallImages(string trainDir, string outputDir) => new()
    {
        TrainDir = trainDir, OutputDir = outputDir, BatchSize = 128, AccumIter = 1, BaseLr = 1e-3, LayerDecay = 0.75, EvalCropPct = 1.0,
    };

    /// <summary>Returns these options if they are consistent; throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public FinetuneOptions Validate()
    {
        if (Init is null && Model is null) throw new ArgumentException("Give starting weights (Init) or an architecture to train from scratch (Model)");
        Model?.Validate();
        if (Epochs <= 0) throw new ArgumentException($"epochs must be positive, got {Epochs}");
        if (WarmupEpochs < 0) throw new ArgumentException($"warmup epochs must be >= 0, got {WarmupEpochs}");
        if (BatchSize <= 0 || AccumIter <= 0) throw new ArgumentException($"batch size ({BatchSize}) and accum iter ({AccumIter}) must be positive");
        if (PeakLr <= 0) throw new ArgumentException($"learning rate must be positive, got {PeakLr}");
        if (LayerDecay <= 0 || LayerDecay > 1) throw new ArgumentException($"layer decay must be in (0, 1], got {LayerDecay}");
        if (DropPath < 0 || DropPath >= 1) throw new ArgumentException($"drop path must be in [0, 1), got {DropPath}");
        if (MinCropScale <= 0 || MinCropScale > 1) throw new ArgumentException($"min crop scale must be in (0, 1], got {MinCropScale}");
        if (EvalCropPct <= 0 || EvalCropPct > 1) throw new ArgumentException($"eval crop pct must be in (0, 1], got {EvalCropPct}");
        if (EvalEvery <= 0) throw new ArgumentException($"eval every must be a positive number of epochs, got {EvalEvery}");
        if (Mixup.LabelSmoothing < 0 || Mixup.LabelSmoothing >= 1) throw new ArgumentException($"label smoothing must be in [0, 1), got {Mixup.LabelSmoothing}");
        PretrainOptions.CheckThreads(Threads);
        TrainingDevice.Resolve(Device);
        return this;
    }
}
