namespace MaeMl.Training;

/// <summary>
/// The official <c>util/lr_sched.adjust_learning_rate</c>: linear warmup over <c>warmup_epochs</c>, then a half-cycle
/// cosine from <c>lr</c> down to <c>min_lr</c> at <c>epochs</c>. <c>epoch</c> is fractional (step / steps_per_epoch + epoch),
/// so the rate changes every optimizer step.
/// </summary>
public sealed record LearningRateSchedule(double PeakLr, double MinLr, double WarmupEpochs, double Epochs)
{
    /// <summary>lr = base_lr x effective batch / 256, as <c>main_pretrain.py</c> computes it.</summary>
    public static double ScaledLr(double baseLr, int effectiveBatchSize) => baseLr * effectiveBatchSize / 256.0;

    public double At(double epoch)
    {
        if (epoch < WarmupEpochs) return PeakLr * epoch / WarmupEpochs;
        if (Epochs <= WarmupEpochs) return PeakLr;
        double progress = Math.Min(1.0, (epoch - WarmupEpochs) / (Epochs - WarmupEpochs));
        return MinLr + (PeakLr - MinLr) * 0.5 * (1.0 + Math.Cos(Math.PI * progress));
    }
}
