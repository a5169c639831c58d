using MaeMl.Data;
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
public sealed record LinearProbeOptions : ClassificationRunOptions
{
    /// <summary>Mean of the patch tokens + a fresh fc_norm instead of the cls token; off as <c>main_linprobe.py</c>.</summary>
    public bool GlobalPool { get; init; }
    /// <summary>Head training epochs (<c>--epochs</c>, default 90).</summary>
    public int Epochs { get; init; } = 90;
    /// <summary>Epochs of linear lr warmup (<c>--warmup_epochs</c>, default 10).</summary>
    public double WarmupEpochs { get; init; } = 10;
    /// <summary>Features per head step (default 256, at least 2; capped at the number of training images); an epoch's last partial batch is dropped.</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>base lr: lr = blr x <see cref="BatchSize"/> / 256 (<c>--blr</c>, default 0.1).</summary>
    public double BaseLr { get; init; } = 0.1;
    /// <summary>Absolute lr (<c>--lr</c>); overrides <see cref="BaseLr"/> when set (LARS wants the official 6.4).</summary>
    public double? Lr { get; init; }
    /// <summary>Floor of the cosine schedule (<c>--min_lr</c>, default 0).</summary>
    public double MinLr { get; init; }
    /// <summary>Weight decay of the head (<c>--weight_decay</c>, default 0).</summary>
    public double WeightDecay { get; init; }
    /// <summary>The head's optimizer (default <see cref="LinearProbeOptimizer.Sgd"/>; the official one is <see cref="LinearProbeOptimizer.Lars"/>).</summary>
    public LinearProbeOptimizer Optimizer { get; init; } = LinearProbeOptimizer.Sgd;
    /// <summary>
    /// True (default): the frozen encoder's features of every training image are computed once, with the evaluation transform, and
    /// the head trains on them (epochs then cost almost nothing). False: as <c>main_linprobe.py</c>, features are recomputed every
    /// epoch from RandomResizedCrop(scale 0.08-1) + flip views, which costs one encoder forward pass per image per epoch.
    /// </summary>
    public bool CacheFeatures { get; init; } = true;
    /// <summary>RandomResizedCrop minimum area fraction of the per-epoch views (only without <see cref="CacheFeatures"/>; default 0.08).</summary>
    public double MinCropScale { get; init; } = 0.08;
    /// <summary>Evaluation (and cached-feature) crop: 0.875 ImageNet-style, 1 for images already at the model size.</summary>
    public double EvalCropPct { get; init; } = 224.0 / 256.0;
    /// <summary>Images per encoder forward pass when computing features.</summary>
    public int FeatureBatchSize { get; init; } = 256;

    /// <summary>The lr at the end of warmup: <see cref="Lr"/>, or <see cref="BaseLr"/> x <see cref="BatchSize"/> / 256.</summary>
    public double PeakLr => Lr ?? LearningRateSchedule.ScaledLr(BaseLr, BatchSize);

    /// <summary>Returns these options if they are consistent; throws <see cref="ArgumentException"/> naming the bad setting.</summary>
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
        TrainingDevice.Resolve(Device);
        return this;
    }
}
