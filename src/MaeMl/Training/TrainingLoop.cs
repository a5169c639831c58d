using System.Diagnostics;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// What a run plugs into <see cref="TrainingLoop{TBatch}"/>: the loss of a batch, the hooks around forward, backward and the optimizer
/// step, the end-of-epoch evaluation and how its checkpoint is written. Everything else (epochs, steps, schedule, accumulation,
/// progress, metrics.jsonl, time limit, periodic and epoch checkpoints, exact resume, the non-finite stop) is the loop's.
/// </summary>
internal abstract class TrainingTask<TBatch> where TBatch : ITrainingBatch
{
    /// <summary>The loss of one batch. Runs inside the step's dispose scope and must not change state besides autograd: after a
    /// LibTorch error it is computed once more (a logged last defence against TorchSharp's temporary-Scalar race).</summary>
    public abstract Tensor Loss(TBatch batch, int epoch, int step);

    /// <summary>Before each forward pass (a mixed-precision working copy pulls the master weights).</summary>
    public virtual void BeforeForward() { }

    /// <summary>After each backward pass (a mixed-precision working copy pushes its gradients).</summary>
    public virtual void AfterBackward() { }

    /// <summary>At an accumulation boundary, just before the optimizer steps (gradient clipping).</summary>
    public virtual void BeforeOptimizerStep() { }

    /// <summary>End of an epoch, before its checkpoint: evaluate and add fields to the epoch's metrics line; returns text for the log line.</summary>
    public virtual string EndOfEpoch(int epoch, JsonObject entry) => "";

    /// <summary>After the end-of-epoch checkpoint was written (best-model and every-N-epochs copies).</summary>
    public virtual void AfterEpochCheckpoint(int epoch, string lastPath) { }

    /// <summary>Writes the run's checkpoint to <paramref name="path"/>: weights, optimizer, the position (epoch, next step) and the step
    /// count. Not called by a loop without a checkpoint path (in-memory training).</summary>
    public virtual void Save(string path, int epoch, int nextStep, long optimizerSteps) { }

    /// <summary>Appended to the message that stops a diverged run.</summary>
    public virtual string Advice => "Try a lower --blr or more warmup.";
}

/// <summary>How a <see cref="TrainingLoop{TBatch}.Run"/> ended.</summary>
/// <param name="EpochsDone">Epochs completed, those before the start point included.</param>
/// <param name="OptimizerSteps">Optimizer steps taken, those before the start point included.</param>
/// <param name="LastEpochLoss">Mean loss of the last epoch completed in this call (NaN when none was).</param>
/// <param name="ImagesSeen">Images trained on in this call.</param>
/// <param name="Elapsed">Wall-clock time of this call.</param>
/// <param name="StoppedByTimeLimit">The loop stopped at the time limit with a checkpoint, before the schedule's end.</param>
internal sealed record TrainingLoopResult(int EpochsDone, long OptimizerSteps, double LastEpochLoss, long ImagesSeen, TimeSpan Elapsed, bool StoppedByTimeLimit);

/// <summary>
/// The one training skeleton (pretraining, fine-tuning, linear probing, detection, segmentation): per-step warmup + cosine schedule (with per-group lr scales for layer
/// decay), gradient accumulation, a metrics line and the progress bar after every batch, a clean stop with a checkpoint when
/// the time limit is reached (the schedule is kept: <c>--resume</c> finishes it), periodic mid-epoch checkpoints, an epoch
/// checkpoint after the task's evaluation, and a stop with a message on a non-finite loss or weights that leaves the last
/// good checkpoint untouched. Data order, augmentation and masks are functions of (seed, epoch, step), so resuming at
/// (epoch, step) reproduces the uninterrupted run.
/// </summary>
internal sealed class TrainingLoop<TBatch> where TBatch : ITrainingBatch
{
    readonly IBatchSource<TBatch> loader;
    readonly ILoopOptimizer optimizer;
    readonly LearningRateSchedule schedule;
    readonly double[] lrScales;
    readonly int epochs, batchSize, accumIter;
    readonly TimeSpan? timeLimit;
    readonly double checkpointMinutes;
    readonly MetricsLog? metrics;
    readonly ConsoleProgress? progress;
    readonly Action<string> log;
    readonly string? lastPath;
    readonly string dataDescription;
    readonly Stopwatch sinceCheckpoint = new();
    string? lastGood;

    /// <summary>A loop over <paramref name="loader"/>'s epochs; throws <see cref="ArgumentException"/> when an epoch has fewer batches
    /// than <paramref name="accumIter"/> or <paramref name="lrScales"/> does not match the optimizer's groups.</summary>
    /// <param name="loader">Training batches (the epoch's order is a function of seed and epoch).</param>
    /// <param name="optimizer">Its groups' lr is set from <paramref name="schedule"/> times <paramref name="lrScales"/> (all 1 when null).</param>
    /// <param name="schedule">The lr, evaluated at the fractional epoch of each accumulation group's first batch.</param>
    /// <param name="lrScales">One lr multiplier per optimizer group, in group order (layer decay); null for all 1.</param>
    /// <param name="epochs">Length of the run in epochs.</param>
    /// <param name="batchSize">Images per batch, for the ETA.</param>
    /// <param name="accumIter">Batches per optimizer step; the loss is divided by it. An epoch's batches beyond the last whole group are left out.</param>
    /// <param name="timeLimit">Stop cleanly with a checkpoint at the first accumulation boundary after this long; null for none.</param>
    /// <param name="checkpointMinutes">Mid-epoch checkpoint interval in minutes, checked at accumulation boundaries.</param>
    /// <param name="metrics">Receives a <c>step</c> line per batch and an <c>epoch</c> line per epoch; null for none.</param>
    /// <param name="progress">The progress bar, updated after every batch; null for none.</param>
    /// <param name="log">Receives the epoch lines, the time-limit notice and retry warnings.</param>
    /// <param name="lastPath">checkpoint-last of the run; null for a run in memory (no checkpoints: a time limit just stops it).</param>
    /// <param name="lastGood">What checkpoint-last holds now, for messages (null: nothing written yet).</param>
    /// <param name="dataDescription">The training data in words, for the error when nothing could be decoded.</param>
    public TrainingLoop(IBatchSource<TBatch> loader, ILoopOptimizer optimizer, LearningRateSchedule schedule, IReadOnlyList<double>? lrScales,
        int epochs, int batchSize, int accumIter, TimeSpan? timeLimit, double checkpointMinutes, MetricsLog? metrics, ConsoleProgress? progress,
        Action<string> log, string? lastPath, string? lastGood, string dataDescription)
    {
        this.loader = loader; this.optimizer = optimizer; this.schedule = schedule;
        int groups = optimizer.GroupCount;
        this.lrScales = lrScales?.ToArray() ?? Enumerable.Repeat(1.0, groups).ToArray();
        if (this.lrScales.Length != groups) throw new ArgumentException($"{this.lrScales.Length} lr scales for {groups} parameter groups");
        this.epochs = epochs; this.batchSize = batchSize; this.accumIter = accumIter; this.timeLimit = timeLimit; this.checkpointMinutes = checkpointMinutes;
        this.metrics = metrics; this.progress = progress; this.log = log; this.lastPath = lastPath; this.lastGood = lastGood; this.dataDescription = dataDescription;
        StepsPerEpoch = loader.BatchesPerEpoch;
        UsableSteps = StepsPerEpoch - StepsPerEpoch % accumIter;
        if (UsableSteps == 0) throw new ArgumentException($"{dataDescription} give {StepsPerEpoch} batches per epoch, fewer than accum_iter {accumIter}");
    }

    /// <summary>Batches per epoch.</summary>
    public int StepsPerEpoch { get; }

    /// <summary>Batches per epoch that are trained on (a whole number of accumulation groups).</summary>
    public int UsableSteps { get; }

    /// <summary>Time since <see cref="Run"/> started.</summary>
    public Stopwatch Wall { get; } = new();

    /// <summary>"The last good checkpoint, ..., is untouched." or that none was written: the sentence every stop message carries.</summary>
    public string Kept() => lastPath is null ? "Nothing was saved (the run trains in memory)."
        : lastGood is null ? $"No checkpoint was written ({Path.GetFileName(lastPath)} does not exist)." : $"The last good checkpoint, {lastGood}, is untouched.";

    void Save(TrainingTask<TBatch> task, int epoch, int nextStep, long optimizerSteps)
    {
        if (lastPath is null) return;
        try { task.Save(lastPath, epoch, nextStep, optimizerSteps); }
        catch (NonFiniteWeightsException e)
        {
            throw new NonFiniteLossException($"Training diverged by epoch {epoch}, step {nextStep}: {e.Message}. {Kept()} {task.Advice}");
        }
        lastGood = $"{lastPath} (epoch {epoch}, step {nextStep})";
        sinceCheckpoint.Restart();
    }

    /// <summary>Trains from (<paramref name="startEpoch"/>, <paramref name="startStep"/>) to the end of the schedule or the time limit.
    /// <paramref name="cancel"/> stops it like the time limit does, at the next accumulation boundary (or after the epoch's evaluation
    /// and checkpoint when that comes first), with checkpoint-last written; then it throws <see cref="OperationCanceledException"/>.
    /// A cancelled run resumes exactly, as a time-limited one does.</summary>
    public TrainingLoopResult Run(TrainingTask<TBatch> task, int startEpoch, int startStep, long optimizerSteps, CancellationToken cancel = default)
    {
        Wall.Restart();
        sinceCheckpoint.Restart();
        long imagesSeen = 0;
        double lastEpochLoss = double.NaN;
        int epochsDone = startEpoch;
        for (int epoch = startEpoch; epoch < epochs; epoch++)
        {
            double lossSum = 0; int lossCount = 0;
            var epochWatch = Stopwatch.StartNew();
            long epochImages = 0;
            int first = epoch == startEpoch ? startStep : 0;
            double lr = schedule.At((double)first / StepsPerEpoch + epoch);
            // the loader is not given the token: a cancelled run stops at the next accumulation boundary, with a checkpoint (AfterStep)
            foreach (var batch in loader.Epoch(epoch, first))
            {
                int step = batch.Index;
                if (step >= UsableSteps) break;
                if (step % accumIter == 0)
                {
                    lr = schedule.At((double)step / StepsPerEpoch + epoch);
                    for (int gi = 0; gi < lrScales.Length; gi++) optimizer.SetLearningRate(gi, lr * lrScales[gi]);
                }
                double lossValue;
                using (var scope = NewDisposeScope())
                {
                    task.BeforeForward();
                    var loss = LossWithRetry(task, batch, epoch, step);
                    lossValue = loss.item<float>();
                    if (!double.IsFinite(lossValue))
                        throw new NonFiniteLossException($"Loss is {lossValue} at epoch {epoch}, step {step} (lr {lr:E3}); stopping. {Kept()} {task.Advice}");
                    if (accumIter == 1) loss.backward();
                    else using (var accum = accumIter.ToScalar()) loss.div(accum).backward();
                    task.AfterBackward();
                    if ((step + 1) % accumIter == 0)
                    {
                        task.BeforeOptimizerStep();
                        optimizer.Step();
                        optimizer.ZeroGrad();
                        optimizerSteps++;
                    }
                }
                lossSum += lossValue; lossCount++;
                imagesSeen += batch.Count; epochImages += batch.Count;
                if (AfterStep(task, epoch, step, lossValue, lossSum / lossCount, lr, epochImages, epochWatch.Elapsed, optimizerSteps, cancel))
                    return new TrainingLoopResult(epochsDone, optimizerSteps, lastEpochLoss, imagesSeen, Wall.Elapsed, StoppedByTimeLimit: true);
            }
            if (epochImages == 0 && first == 0)
            {
                var (badPath, why) = loader.Unreadable.OrderBy(kv => kv.Key, StringComparer.Ordinal).FirstOrDefault();
                throw new InvalidDataException($"None of {dataDescription} could be decoded" +
                    (badPath is null ? "" : $" (e.g. '{badPath}': {why})") + $"; nothing was trained. {Kept()}");
            }
            lastEpochLoss = lossSum / Math.Max(1, lossCount);
            epochsDone = epoch + 1;
            var trainSeconds = epochWatch.Elapsed.TotalSeconds;
            var entry = new JsonObject
            {
                ["type"] = "epoch", ["iter"] = (long)(epoch + 1) * StepsPerEpoch - 1, ["epoch"] = epoch, ["loss"] = lastEpochLoss,
                ["images_per_s"] = Math.Round(epochImages / trainSeconds, 1), ["train_s"] = Math.Round(trainSeconds, 1),
            };
            var evaluation = task.EndOfEpoch(epoch, entry);
            entry["elapsed_s"] = Math.Round(Wall.Elapsed.TotalSeconds, 2);
            Save(task, epoch + 1, 0, optimizerSteps);
            if (lastPath is not null) task.AfterEpochCheckpoint(epoch, lastPath);
            metrics?.Write(entry);
            log($"epoch {epoch + 1}/{epochs}: loss {lastEpochLoss:F4}, {epochImages / trainSeconds:F0} img/s{evaluation}, {ConsoleProgress.Format(Wall.Elapsed)} elapsed");
            if (cancel.IsCancellationRequested && epoch + 1 < epochs) throw Cancelled(epoch + 1, 0, cancel);
        }
        return new TrainingLoopResult(epochsDone, optimizerSteps, lastEpochLoss, imagesSeen, Wall.Elapsed, StoppedByTimeLimit: false);
    }

    Tensor LossWithRetry(TrainingTask<TBatch> task, TBatch batch, int epoch, int step)
    {
        for (int attempt = 1; ; attempt++)
        {
            try { return task.Loss(batch, epoch, step); }
            catch (System.Runtime.InteropServices.ExternalException e) when (attempt < 2)
            {
                log($"warning: LibTorch error in the forward pass at epoch {epoch}, step {step}; computing the step once more ({e.Message.Split('\n')[0].Trim()})");
            }
        }
    }

    /// <summary>The cancellation after checkpoint-last was written at (<paramref name="epoch"/>, <paramref name="nextStep"/>), logged and thrown.</summary>
    OperationCanceledException Cancelled(int epoch, int nextStep, CancellationToken cancel)
    {
        var saved = lastPath is null ? "nothing was saved (the run trains in memory)"
            : $"saved {lastGood}; --resume auto continues the same schedule from there";
        var message = $"Training was cancelled at epoch {epoch}, step {nextStep}: {saved}.";
        log(message);
        return new OperationCanceledException(message, cancel);
    }

    /// <summary>Metrics line and progress after a batch; at accumulation boundaries a clean stop at the time limit or on cancellation
    /// (both with a checkpoint), or a periodic checkpoint.</summary>
    bool AfterStep(TrainingTask<TBatch> task, int epoch, int step, double loss, double meanLoss, double lr, long epochImages, TimeSpan epochElapsed, long optimizerSteps,
        CancellationToken cancel)
    {
        double ips = epochImages / Math.Max(1e-9, epochElapsed.TotalSeconds);
        metrics?.Write(new JsonObject
        {
            ["type"] = "step", ["iter"] = (long)epoch * StepsPerEpoch + step, ["epoch"] = epoch, ["step"] = step,
            ["epoch_f"] = epoch + (double)(step + 1) / StepsPerEpoch, ["loss"] = loss, ["lr"] = lr,
            ["images_per_s"] = Math.Round(ips, 1), ["elapsed_s"] = Math.Round(Wall.Elapsed.TotalSeconds, 2),
        });
        long remainingSteps = (long)(epochs - epoch - 1) * UsableSteps + (UsableSteps - step - 1);
        progress?.Report(epoch, epochs, step + 1, UsableSteps, meanLoss, lr, ips, TimeSpan.FromSeconds(remainingSteps * batchSize / Math.Max(1e-9, ips)));

        bool boundary = (step + 1) % accumIter == 0 && step + 1 < UsableSteps;
        if (boundary && cancel.IsCancellationRequested)
        {
            Save(task, epoch, step + 1, optimizerSteps);
            throw Cancelled(epoch, step + 1, cancel);
        }
        if (boundary && timeLimit is TimeSpan limit && Wall.Elapsed >= limit)
        {
            Save(task, epoch, step + 1, optimizerSteps);
            double done = epoch + (double)(step + 1) / UsableSteps;
            log($"time limit {limit} reached at epoch {epoch}, step {step + 1} ({done:F2} of the schedule's {epochs} epochs, lr {lr:E2}): " +
                (lastPath is null
                    ? $"stopped with the cosine unfinished ({epochs - done:F2} epochs left; lower the epochs to fit the time, the schedule is not shortened)"
                    : "saved checkpoint-last. The schedule is not shortened: the cosine is unfinished, and --resume auto continues the same " +
                      $"schedule to its end ({epochs - done:F2} epochs left)"));
            return true;
        }
        if (boundary && lastPath is not null && sinceCheckpoint.Elapsed.TotalMinutes >= checkpointMinutes) Save(task, epoch, step + 1, optimizerSteps);
        return false;
    }
}

/// <summary>What <see cref="TrainingLoop{TBatch}"/> drives: per-group learning rates, the step and the zeroing of gradients.</summary>
internal interface ILoopOptimizer
{
    /// <summary>Parameter groups, each with its own lr.</summary>
    int GroupCount { get; }
    /// <summary>Sets group <paramref name="group"/>'s lr for the next step.</summary>
    void SetLearningRate(int group, double lr);
    /// <summary>Updates the parameters from their gradients.</summary>
    void Step();
    /// <summary>Zeroes the gradients.</summary>
    void ZeroGrad();
}

/// <summary>A TorchSharp optimizer (MaeMl's <see cref="AdamW"/>, SGD) as an <see cref="ILoopOptimizer"/>.</summary>
internal sealed class TorchOptimizer(OptimizerHelper optimizer) : ILoopOptimizer
{
    readonly torch.optim.ILearningRateController[] groups = optimizer.ParamGroups.ToArray();
    public int GroupCount => groups.Length;
    public void SetLearningRate(int group, double lr) => groups[group].LearningRate = lr;
    public void Step() => optimizer.step();
    public void ZeroGrad() => optimizer.zero_grad();
}
