using MaeMl.Model;
namespace MaeMl.Training;

/// <summary>Fine-tuning settings shared by the detection and segmentation trainers (AdamW, warmup + cosine schedule).</summary>
public sealed record DenseTrainingOptions
{
    /// <summary>Training epochs (the schedule's length). Default 20.</summary>
    public int Epochs { get; init; } = 20;
    /// <summary>Images per step. Default 16.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Peak learning rate of the head (and pyramid).</summary>
    public double Lr { get; init; } = 1e-3;
    /// <summary>The ViT's learning rate is <see cref="Lr"/> times this (0 freezes it).</summary>
    public double BackboneLrScale { get; init; } = 0.1;
    /// <summary>Layer-wise lr decay of the ViT (ViTDet: 0.7 for ViT-B): block i's lr is scaled by <c>decay^(depth - i)</c> on top of
    /// <see cref="BackboneLrScale"/>, the embeddings' by <c>decay^(depth + 1)</c>. Default 1 (off).</summary>
    public double LayerDecay { get; init; } = 1.0;
    /// <summary>AdamW weight decay on weights (not biases, norms, position tables, cls token). Default 0.05.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Linear warmup before the half-cycle cosine, in epochs. Default 1.</summary>
    public double WarmupEpochs { get; init; } = 1;
    /// <summary>Random horizontal flips during training.</summary>
    public bool Flip { get; init; } = true;
    /// <summary>Scale jitter: each batch zooms into a random square window whose side is uniform in [this, 1] of the image (boxes and
    /// masks move with it). Default 1 (off); 0.5 is a mild large-scale jitter.</summary>
    public double MinScale { get; init; } = 1.0;
    /// <summary>Colour jitter strength s: per image, contrast in [1 - s, 1 + s] and brightness in [-s, s] (normalised units). Default 0 (off).</summary>
    public double ColourJitter { get; init; }
    /// <summary>Seed of initialisation, order and flips.</summary>
    public int Seed { get; init; }
    /// <summary>Stops after the step that crosses this wall-clock time (the schedule still assumes <see cref="Epochs"/>: with a
    /// <see cref="OutputDir"/>, <see cref="Resume"/> finishes it).</summary>
    public TimeSpan? TimeLimit { get; init; }
    /// <summary>Run folder: <c>checkpoint-last.maeml</c> (the task's model file with the optimizer state and the position, for
    /// <see cref="Resume"/>), <c>metrics.jsonl</c>, <c>loss-curve.png</c> and <c>run.json</c>. Null trains in memory and writes nothing.</summary>
    public string? OutputDir { get; init; }
    /// <summary>With <see cref="OutputDir"/>: <c>auto</c> continues the folder's checkpoint-last when there is one, a path continues
    /// that checkpoint; null starts afresh. The continuation is exact (data order and flips derive from (seed, epoch, step)).</summary>
    public string? Resume { get; init; }
    /// <summary>With <see cref="OutputDir"/>: minutes between mid-epoch checkpoints (default 10).</summary>
    public double CheckpointMinutes { get; init; } = 10;
    /// <summary>Training device: <c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c> (needs a CUDA LibTorch package instead of TorchSharp-cpu;
    /// untested on GPUs by MaeMl's own tests).</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Checks the settings; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public DenseTrainingOptions Validate()
    {
        if (Epochs <= 0) throw new ArgumentException($"Epochs must be positive, got {Epochs}");
        if (BatchSize <= 0) throw new ArgumentException($"BatchSize must be positive, got {BatchSize}");
        if (!(Lr > 0) || !double.IsFinite(Lr)) throw new ArgumentException($"Lr must be a positive number, got {Lr}");
        if (!(BackboneLrScale >= 0) || !double.IsFinite(BackboneLrScale)) throw new ArgumentException($"BackboneLrScale must be 0 or more, got {BackboneLrScale}");
        if (!(MinScale > 0 && MinScale <= 1)) throw new ArgumentException($"MinScale must be in (0, 1], got {MinScale}");
        if (!(ColourJitter >= 0 && ColourJitter < 1)) throw new ArgumentException($"ColourJitter must be in [0, 1), got {ColourJitter}");
        if (!(LayerDecay > 0 && LayerDecay <= 1)) throw new ArgumentException($"LayerDecay must be in (0, 1], got {LayerDecay}");
        if (!(WeightDecay >= 0)) throw new ArgumentException($"WeightDecay must be 0 or more, got {WeightDecay}");
        if (!(WarmupEpochs >= 0)) throw new ArgumentException($"WarmupEpochs must be 0 or more, got {WarmupEpochs}");
        if (!(CheckpointMinutes > 0)) throw new ArgumentException($"CheckpointMinutes must be positive, got {CheckpointMinutes}");
        TrainingDevice.Resolve(Device);
        if (Resume is not null && OutputDir is null) throw new ArgumentException("Resume needs an OutputDir (the run folder)");
        return this;
    }
}

/// <summary>What a dense training run did.</summary>
/// <param name="EpochsDone">Epochs completed, those before a resume included.</param>
/// <param name="Steps">Optimizer steps taken, those before a resume included.</param>
/// <param name="LastEpochLoss">Mean loss of the last epoch completed in this run (NaN when none was).</param>
/// <param name="Seconds">Wall-clock time of this run's training loop.</param>
/// <param name="StoppedByTimeLimit">The run stopped at the time limit before the schedule's end.</param>
/// <param name="CheckpointPath">The run folder's checkpoint-last (null without <see cref="DenseTrainingOptions.OutputDir"/>).</param>
public sealed record DenseTrainingResult(int EpochsDone, long Steps, double LastEpochLoss, double Seconds, bool StoppedByTimeLimit, string? CheckpointPath = null);
