using System.Diagnostics;
using System.Text.Json.Nodes;

namespace MaeMl.Training;

/// <summary>
/// The per-step bookkeeping the pretrainer and the fine-tuner share: a metrics line and the progress bar after every
/// batch and, at accumulation boundaries, a clean stop with a checkpoint once the time limit is reached, or a periodic
/// mid-epoch checkpoint. <c>saveLast(epoch, nextStep)</c> writes checkpoint-last and calls <see cref="CheckpointWritten"/>.
/// </summary>
public sealed class StepBookkeeping(MetricsLog metrics, ConsoleProgress progress, Action<string> log, int epochs, int batchSize,
    int accumIter, int stepsPerEpoch, int usableSteps, TimeSpan? timeLimit, double checkpointMinutes, Action<int, int> saveLast)
{
    readonly Stopwatch sinceCheckpoint = Stopwatch.StartNew();

    /// <summary>Time since the run (or its resumption) started.</summary>
    public Stopwatch Wall { get; } = Stopwatch.StartNew();

    /// <summary>Restarts the periodic-checkpoint clock.</summary>
    public void CheckpointWritten() => sinceCheckpoint.Restart();

    /// <summary>Records a finished batch; returns true when the run must stop now (time limit reached, checkpoint saved).</summary>
    public bool AfterStep(int epoch, int step, double loss, double meanLoss, double lr, long epochImages, TimeSpan epochElapsed)
    {
        double ips = epochImages / Math.Max(1e-9, epochElapsed.TotalSeconds);
        metrics.Write(new JsonObject
        {
            ["type"] = "step", ["iter"] = (long)epoch * stepsPerEpoch + step, ["epoch"] = epoch, ["step"] = step,
            ["epoch_f"] = epoch + (double)(step + 1) / stepsPerEpoch, ["loss"] = loss, ["lr"] = lr,
            ["images_per_s"] = Math.Round(ips, 1), ["elapsed_s"] = Math.Round(Wall.Elapsed.TotalSeconds, 2),
        });
        long remainingSteps = (long)(epochs - epoch - 1) * usableSteps + (usableSteps - step - 1);
        progress.Report(epoch, epochs, step + 1, usableSteps, meanLoss, lr, ips, TimeSpan.FromSeconds(remainingSteps * batchSize / Math.Max(1e-9, ips)));

        bool boundary = (step + 1) % accumIter == 0 && step + 1 < usableSteps;
        if (boundary && timeLimit is TimeSpan limit && Wall.Elapsed >= limit)
        {
            saveLast(epoch, step + 1);
            double done = epoch + (double)(step + 1) / usableSteps;
            log($"time limit {limit} reached at epoch {epoch}, step {step + 1} ({done:F2} of the schedule's {epochs} epochs, lr {lr:E2}): " +
                "saved checkpoint-last. The schedule is not shortened: the cosine is unfinished, and --resume auto continues the same " +
                $"schedule to its end ({epochs - done:F2} epochs left)");
            return true;
        }
        if (boundary && sinceCheckpoint.Elapsed.TotalMinutes >= checkpointMinutes) saveLast(epoch, step + 1);
        return false;
    }
}
