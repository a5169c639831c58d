namespace MaeMl.Training;

/// <summary>
/// The official <c>util/lr_sched.adjust_learning_rate</c>: linear warmup over <c>warmup_epochs</c>, then a half-cycle
/// cosine from <c>lr</c> down to <c>min_lr</c> at <c>epochs</c>. <c>epoch</c> is fractional (step / steps_per_epoch + epoch),
/// so the rate changes every optimizer step.
/// </summary>
/// <param name="PeakLr">The absolute lr reached at the end of warmup (<c>args.lr</c>).</param>
/// <param name="MinLr">The lr at the end of the cosine (<c>args.min_lr</c>).</param>
/// <param name="WarmupEpochs">Epochs of linear warmup from 0 (<c>args.warmup_epochs</c>).</param>
/// <param name="Epochs">Length of the schedule in epochs (<c>args.epochs</c>).</param>
public sealed record LearningRateSchedule(double PeakLr, double MinLr, double WarmupEpochs, double Epochs)
{
    /// <summary>lr = base_lr x effective batch / 256, as <c>main_pretrain.py</c> computes it.</summary>
    public static double ScaledLr(double baseLr, int effectiveBatchSize) => baseLr * effectiveBatchSize / 256.0;

    /// <summary>The lr at fractional <paramref name="epoch"/>: <c>PeakLr x epoch / WarmupEpochs</c> in warmup, then the cosine to
    /// <see cref="MinLr"/> at <see cref="Epochs"/> (and <see cref="MinLr"/> after it; <see cref="PeakLr"/> when there is no cosine phase).</summary>
    public double At(double epoch)
    {
        if (epoch < WarmupEpochs) return PeakLr * epoch / WarmupEpochs;
        if (Epochs <= WarmupEpochs) return PeakLr;
        double progress = Math.Min(1.0, (epoch - WarmupEpochs) / (Epochs - WarmupEpochs));
        return MinLr + (PeakLr - MinLr) * 0.5 * (1.0 + Math.Cos(Math.PI * progress));
    }
}
