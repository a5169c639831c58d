using MaeMl.Model;

namespace MaeMl.Training;

/// <summary>Optimizer of the linear probe's head.</summary>
public enum LinearProbeOptimizer
{
    /// <summary>SGD with momentum 0.9: the default here, for the small batches of small datasets.</summary>
    Sgd,
    /// <summary>LARS (momentum 0.9, trust coefficient 0.001) as <c>main_linprobe.py</c>. Its trust ratio makes every step a fraction
    /// (lr x 0.001) of the weight norm, so it needs the official absolute lr (0.1 x 16384 / 256 = 6.4, <c>Lr</c>) rather than blr 0.1
    /// scaled to a small batch, which barely moves the head (measured on CIFAR-10: 30% with lr 0.1 vs 44% with lr 6.4 or SGD).</summary>
    Lars,
}

/// <summary>
/// Settings of a linear probe as the official <c>main_linprobe.py</c>: frozen encoder, cls-token features after <c>norm</c>
/// (<c>global_pool</c> off, the official linprobe default), <c>BatchNorm1d(affine=False, eps=1e-6)</c> + linear head
/// (trunc-normal std 0.01), blr 0.1, no weight decay, 90 epochs with 10 warmup. The official batch is 16384 with LARS; the defaults
/// here are batch 256, so that small datasets get enough steps (lr = blr x batch / 256), and SGD with momentum 0.9, which suits that
/// batch (see <see cref="LinearProbeOptimizer.Lars"/>).
/// </summary>
public sealed record LinearProbeOptions
{
    public required string TrainDir { get; init; }
    public string? ValDir { get; init; }
    public required string OutputDir { get; init; }
    /// <summary>Pretrained weights (any file <see cref="Interop.MaeModelFile.LoadClassifier(string, Interop.MaeLoadOptions?)"/> reads); null probes a random <see cref="Model"/>.</summary>
    public string? Init { get; init; }
    public MaeConfig? Model { get; init; }
    /// <summary>Mean of the patch tokens + a fresh fc_norm instead of the cls token; off as <c>main_linprobe.py</c>.</summary>
    public bool GlobalPool { get; init; }
    public int Epochs { get; init; } = 90;
    public double WarmupEpochs { get; init; } = 10;
    public int BatchSize { get; init; } = 256;
    public double BaseLr { get; init; } = 0.1;
    public double? Lr { get; init; }
    public double MinLr { get; init; }
    public double WeightDecay { get; init; }
    public LinearProbeOptimizer Optimizer { get; init; } = LinearProbeOptimizer.Sgd;
    /// <summary>
    /// True (default): the frozen encoder's features of every training image are computed once, with the evaluation transform, and
    /// the head trains on them (epochs then cost almost nothing). False: as <c>main_linprobe.py</c>, features are recomputed every
    /// epoch from RandomResizedCrop(scale 0.08-1) + flip views, which costs one encoder forward pass per image per epoch.
    /// </summary>
    public bool CacheFeatures { get; init; } = true;
    public double MinCropScale { get; init; } = 0.08;
    /// <summary>Evaluation (and cached-feature) crop: 0.875 ImageNet-style, 1 for images already at the model size.</summary>
    public double EvalCropPct { get; init; } = 224.0 / 256.0;
    /// <summary>Images per encoder forward pass when computing features.</summary>
    public int FeatureBatchSize { get; init; } = 256;
    public int Seed { get; init; }
    public int? LimitPerClass { get; init; }
    public int? ValLimitPerClass { get; init; }
    public int Prefetch { get; init; } = 4;
    public int Threads { get; init; }

    public double PeakLr => Lr ?? LearningRateSchedule.ScaledLr(BaseLr, BatchSize);

    public LinearProbeOptions Validate()
    {
        if (Init is null && Model is null) throw new ArgumentException("Give pretrained weights (Init) or an architecture (Model)");
        Model?.Validate();
        if (Epochs <= 0) throw new ArgumentException($"epochs must be positive, got {Epochs}");
        if (BatchSize < 2) throw new ArgumentException($"batch size must be at least 2 (BatchNorm), got {BatchSize}");
        if (FeatureBatchSize <= 0) throw new ArgumentException($"feature batch size must be positive, got {FeatureBatchSize}");
        if (PeakLr <= 0) throw new ArgumentException($"learning rate must be positive, got {PeakLr}");
        if (EvalCropPct <= 0 || EvalCropPct > 1) throw new ArgumentException($"eval crop pct must be in (0, 1], got {EvalCropPct}");
        PretrainOptions.CheckThreads(Threads);
        return this;
    }
}
