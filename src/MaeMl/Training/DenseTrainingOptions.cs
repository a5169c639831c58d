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
    /// <summary>AdamW weight decay on weights (not biases, norms, position tables, cls token). Default 0.05.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Linear warmup before the half-cycle cosine, in epochs. Default 1.</summary>
    public double WarmupEpochs { get; init; } = 1;
    /// <summary>Random horizontal flips during training.</summary>
    public bool Flip { get; init; } = true;
    /// <summary>Seed of initialisation, order and flips.</summary>
    public int Seed { get; init; }
    /// <summary>Stops after the step that crosses this wall-clock time (the schedule still assumes <see cref="Epochs"/>).</summary>
    public TimeSpan? TimeLimit { get; init; }
}

/// <summary>What a dense training run did.</summary>
public sealed record DenseTrainingResult(int EpochsDone, long Steps, double LastEpochLoss, double Seconds, bool StoppedByTimeLimit);
