using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Visualization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>How a <see cref="Pretrainer.Run"/> ended.</summary>
public sealed record PretrainResult(string CheckpointPath, int EpochsDone, long OptimizerSteps, double LastEpochLoss,
    double ImagesPerSecond, bool StoppedByTimeLimit, IReadOnlyDictionary<string, string> SkippedImages);

/// <summary>
/// MAE pretraining as the official <c>main_pretrain.py</c> + <c>engine_pretrain.py</c>: AdamW(0.9, 0.95) with weight decay
/// on weights only, lr = blr x effective batch / 256, per-step warmup + half-cycle cosine, gradient accumulation,
/// seeded runs, atomic checkpoints with exact resume, metrics log, progress bar and a loss-curve PNG.
/// </summary>
public sealed class Pretrainer
{
    public const string LastCheckpointName = "checkpoint-last" + MaeCheckpoint.Extension;
    readonly PretrainOptions options;
    readonly ConsoleProgress progress;
    readonly Action<string> log;

    public Pretrainer(PretrainOptions options, ConsoleProgress? progress = null, Action<string>? log = null)
    {
        this.options = options.Validate();
        this.progress = progress ?? new ConsoleProgress();
        this.log = log ?? this.progress.Line;
    }

    /// <summary>
    /// The forward pass, retried (up to twice) when LibTorch reports an error. TorchSharp 0.107 passes temporary
    /// <c>Scalar</c> objects (the implicit alpha of <c>a + b</c>, constants in <c>1 - mask</c>) to native code without keeping
    /// them alive, so a garbage collection on another thread (the data loader's) can free one mid-call; LibTorch then
    /// rejects the garbage value. A forward pass changes no state, so running it again is safe.
    /// </summary>
    MaeOutput ForwardWithRetry(MaskedAutoencoderViT model, Tensor imgs, Tensor noise, int epoch, int step)
    {
        for (int attempt = 1; ; attempt++)
        {
            try { return model.Forward(imgs, noise); }
            catch (System.Runtime.InteropServices.ExternalException e) when (attempt < 3)
            {
                log($"warning: LibTorch error in the forward pass at epoch {epoch}, step {step}; retrying ({e.Message.Split('\n')[0].Trim()})");
            }
        }
    }

    public PretrainResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        Directory.CreateDirectory(o.OutputDir);
        using var folderLock = RunFolder.Lock(o.OutputDir);
        RunFolder.SweepStaleTemporaries(o.OutputDir, log);
        var folder = ImageFolder.Unlabelled(o.DataDir, o.Limit, exclude: o.OutputDir);
        var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.Pretrain(o.Model.ImageSize, o.MinCropScale),
            o.Model.ImageSize, o.BatchSize, shuffle: true, dropLast: true, seed: o.Seed, prefetch: o.Prefetch, log: log);
        int stepsPerEpoch = loader.BatchesPerEpoch;
        int usableSteps = stepsPerEpoch - stepsPerEpoch % o.AccumIter;
        if (usableSteps == 0) throw new ArgumentException($"{folder.Samples.Count} images give {stepsPerEpoch} batches per epoch, fewer than accum_iter {o.AccumIter}");

        torch.manual_seed(o.Seed);
        using var model = new MaskedAutoencoderViT(o.Model);
        var groups = ParameterGroups.AdamWGroups(model, o.PeakLr, o.WeightDecay);
        using var optimizer = torch.optim.AdamW(groups, o.PeakLr, 0.9, 0.95);
        var precision = CpuFeatures.Resolve(o.Precision);
        using var mixed = precision == TrainingPrecision.BFloat16 ? new BFloat16MasterWeights(model) : null;
        var compute = mixed?.Work ?? model;
        var schedule = new LearningRateSchedule(o.PeakLr, o.MinLr, o.WarmupEpochs, o.Epochs);

        int startEpoch = 0, startStep = 0;
        long optimizerSteps = 0;
        string lastPath = Path.Combine(o.OutputDir, LastCheckpointName);
        string? lastGood = null;   // checkpoint-last and the point it holds, for messages
        try
        {
            if (File.Exists(lastPath) && MaeCheckpoint.ReadHeader(lastPath).Training is var lt)
                lastGood = $"{lastPath} (epoch {lt["epoch"]?.GetValue<int>() ?? 0}, step {lt["step_in_epoch"]?.GetValue<int>() ?? 0})";
        }
        catch (Exception e) when (e is InvalidDataException or IOException or InvalidOperationException or FormatException) { }
        string Kept() => lastGood is null ? $"No checkpoint was written ({LastCheckpointName} does not exist)." : $"The last good checkpoint, {lastGood}, is untouched.";
        var resume = o.Resume == "auto" ? (File.Exists(lastPath) ? lastPath : null) : o.Resume;
        if (resume is not null)
        {
            var header = MaeCheckpoint.LoadInto(resume, model, optimizer);
            var t = header.Training;
            startEpoch = t["epoch"]?.GetValue<int>() ?? 0;
            startStep = t["step_in_epoch"]?.GetValue<int>() ?? 0;
            optimizerSteps = t["optimizer_steps"]?.GetValue<long>() ?? 0;
            if (t["seed"]?.GetValue<int>() is int seed && seed != o.Seed)
                log($"warning: resuming a run seeded {seed} with seed {o.Seed}: data order and masks will differ");
            mixed?.PullWeights();
            log($"resumed from {resume}: epoch {startEpoch}, step {startStep}, optimizer step {optimizerSteps}");
        }
        RunFolder.WriteText(Path.Combine(o.OutputDir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));
        log($"pretraining {folder.Samples.Count} images from {o.DataDir}: {stepsPerEpoch} steps/epoch, batch {o.BatchSize} x accum {o.AccumIter}, " +
            $"lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), {precision}, torch threads {torch.get_num_threads()}");

        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"), resume is null ? null : (long)startEpoch * stepsPerEpoch + startStep);
        StepBookkeeping? book = null;
        long imagesSeen = 0;
        double lastEpochLoss = double.NaN;
        bool stoppedByTime = false;
        int epochsDone = startEpoch;

        JsonObject State(int epoch, int stepInEpoch) => new()
        {
            ["epoch"] = epoch, ["step_in_epoch"] = stepInEpoch, ["optimizer_steps"] = optimizerSteps, ["seed"] = o.Seed,
            ["steps_per_epoch"] = stepsPerEpoch, ["rng"] = "data order, augmentation and masks derive from (seed, epoch, step)",
            ["options"] = JsonSerializer.SerializeToNode(o with { }),
        };
        void Save(int epoch, int stepInEpoch, string path)
        {
            try { MaeCheckpoint.Save(path, model, State(epoch, stepInEpoch), optimizer); }
            catch (NonFiniteWeightsException e)
            {
                throw new NonFiniteLossException($"Training diverged by epoch {epoch}, step {stepInEpoch}: {e.Message}. {Kept()} " +
                    "Try a lower --blr, more warmup, or --precision float32.");
            }
            lastGood = $"{path} (epoch {epoch}, step {stepInEpoch})";
            book?.CheckpointWritten();
        }
        book = new StepBookkeeping(metrics, progress, log, o.Epochs, o.BatchSize, o.AccumIter, stepsPerEpoch, usableSteps,
            o.TimeLimit, o.CheckpointMinutes, (epoch, next) => Save(epoch, next, lastPath));
        var wall = book.Wall;

        for (int epoch = startEpoch; epoch < o.Epochs && !stoppedByTime; epoch++)
        {
            double lossSum = 0; int lossCount = 0;
            var epochWatch = Stopwatch.StartNew();
            long epochImages = 0;
            int first = epoch == startEpoch ? startStep : 0;
            foreach (var batch in loader.Epoch(epoch, first, cancel))
            {
                int step = batch.Index;
                if (step >= usableSteps) break;
                if (step % o.AccumIter == 0)
                {
                    double lr = schedule.At((double)step / stepsPerEpoch + epoch);
                    foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                }
                double lossValue;
                using (var scope = NewDisposeScope())
                {
                    mixed?.PullWeights();
                    var imgs = batch.ImagesTensor();
                    using var gen = new Generator((ulong)Seeds.Mix(o.Seed, epoch, step, 0x4D41534B), torch.CPU);
                    var noise = torch.rand(new long[] { batch.Count, o.Model.NumPatches }, generator: gen);
                    var output = ForwardWithRetry(compute, imgs, noise, epoch, step);
                    lossValue = output.Loss.item<float>();
                    if (!double.IsFinite(lossValue))
                        throw new NonFiniteLossException($"Loss is {lossValue} at epoch {epoch}, step {step} (lr {optimizer.ParamGroups.First().LearningRate:E3}); " +
                            $"stopping. {Kept()} Try a lower --blr, more warmup, or --precision float32.");
                    (output.Loss / o.AccumIter).backward();
                    mixed?.PushGradients();
                    if ((step + 1) % o.AccumIter == 0)
                    {
                        optimizer.step();
                        optimizer.zero_grad();
                        optimizerSteps++;
                    }
                }
                lossSum += lossValue; lossCount++;
                imagesSeen += batch.Count; epochImages += batch.Count;
                if (book.AfterStep(epoch, step, lossValue, lossSum / lossCount, optimizer.ParamGroups.First().LearningRate, epochImages, epochWatch.Elapsed))
                {
                    stoppedByTime = true;
                    break;
                }
                cancel.ThrowIfCancellationRequested();
            }
            if (stoppedByTime) break;
            if (epochImages == 0 && first == 0)
            {
                var (badPath, why) = loader.Unreadable.OrderBy(kv => kv.Key, StringComparer.Ordinal).FirstOrDefault();
                throw new InvalidDataException($"None of the {folder.Samples.Count} images under '{o.DataDir}' could be decoded" +
                    (badPath is null ? "" : $" (e.g. '{badPath}': {why})") + $"; nothing was trained. {Kept()}");
            }
            lastEpochLoss = lossSum / Math.Max(1, lossCount);
            epochsDone = epoch + 1;
            Save(epoch + 1, 0, lastPath);
            if (o.SaveEveryEpochs > 0 && (epoch + 1) % o.SaveEveryEpochs == 0)
                RunFolder.Copy(lastPath, Path.Combine(o.OutputDir, $"checkpoint-epoch{epoch + 1}{MaeCheckpoint.Extension}"));
            metrics.Write(new JsonObject
            {
                ["type"] = "epoch", ["iter"] = (long)(epoch + 1) * stepsPerEpoch - 1, ["epoch"] = epoch, ["loss"] = lastEpochLoss,
                ["images_per_s"] = Math.Round(epochImages / epochWatch.Elapsed.TotalSeconds, 1), ["elapsed_s"] = Math.Round(wall.Elapsed.TotalSeconds, 2),
            });
            log($"epoch {epoch + 1}/{o.Epochs}: loss {lastEpochLoss:F4}, {epochImages / epochWatch.Elapsed.TotalSeconds:F0} img/s, {ConsoleProgress.Format(wall.Elapsed)} elapsed");
        }

        var curve = Path.Combine(o.OutputDir, "loss-curve.png");
        LossCurvePlot.Write(metrics.Path, curve, $"MAE pretraining loss ({o.Model.EmbedDim}x{o.Model.Depth}, {o.Model.ImageSize}px)");
        if (loader.Unreadable.Count > 0) log($"{loader.Unreadable.Count} unreadable image(s) were skipped (listed above)");
        return new PretrainResult(lastPath, epochsDone, optimizerSteps, lastEpochLoss, imagesSeen / Math.Max(1e-9, wall.Elapsed.TotalSeconds),
            stoppedByTime, loader.Unreadable);
    }
}
