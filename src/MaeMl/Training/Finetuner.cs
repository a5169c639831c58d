using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Evaluation;
using MaeMl.Model;
using MaeMl.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>How a <see cref="Finetuner.Run"/> ended: the last checkpoint (a <see cref="ClassifierCheckpoint"/>), the final model's
/// validation metrics (null without a validation set), the best validation top-1 over the epochs (NaN without one), the wall-clock time.</summary>
public sealed record FinetuneResult(string CheckpointPath, IReadOnlyList<string> ClassNames, int EpochsDone, long OptimizerSteps, double LastEpochLoss,
    ClassificationMetrics? Validation, double BestTop1, TimeSpan Elapsed, bool StoppedByTimeLimit, IReadOnlyDictionary<string, string> SkippedImages);

/// <summary>
/// Fine-tuning as the official <c>main_finetune.py</c> + <c>engine_finetune.py</c>: a <see cref="VisionTransformer"/> from
/// MAE weights (or from scratch), AdamW with layer-wise lr decay and timm's no-decay groups, per-step warmup + cosine to
/// min_lr, drop path, mixup/cutmix with label smoothing and soft-target cross entropy, RandAugment and random erasing,
/// evaluation (top-1/top-5) after each epoch, atomic checkpoints with exact resume, metrics log, progress and curves.
/// </summary>
public sealed class Finetuner
{
    public const string LastCheckpointName = "checkpoint-last" + MaeCheckpoint.Extension;
    public const string BestCheckpointName = "checkpoint-best" + MaeCheckpoint.Extension;
    readonly FinetuneOptions options;
    readonly ConsoleProgress progress;
    readonly Action<string> log;

    public Finetuner(FinetuneOptions options, ConsoleProgress? progress = null, Action<string>? log = null)
    {
        this.options = options.Validate();
        this.progress = progress ?? new ConsoleProgress();
        this.log = log ?? this.progress.Line;
    }

    public FinetuneResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        Directory.CreateDirectory(o.OutputDir);
        var train = ImageFolder.Labelled(o.TrainDir, o.LimitPerClass);
        var classes = train.Classes;
        if (classes.Count < 2) throw new ArgumentException($"'{o.TrainDir}' has a single class folder ({classes[0]}): classification needs at least two");
        var val = o.ValDir is null ? null : ImageFolder.Labelled(o.ValDir, o.ValLimitPerClass, classes);

        torch.manual_seed(o.Seed);
        using var model = ClassifierInitialization.Create(o.Init, o.Model, classes.Count, o.GlobalPool, o.DropPath, log);
        int size = model.Config.Encoder.ImageSize;
        var loader = new PrefetchingBatchLoader(train.Samples,
            SampleTransforms.Finetune(size, o.MinCropScale, o.RandAugment, o.RandomErasingProb > 0 ? new RandomErasing(o.RandomErasingProb) : null),
            size, o.BatchSize, shuffle: true, dropLast: true, seed: o.Seed, prefetch: o.Prefetch, log: log);
        var valLoader = val is null ? null : new PrefetchingBatchLoader(val.Samples, SampleTransforms.ResizeCenterCrop(size, o.EvalCropPct),
            size, o.BatchSize, shuffle: false, dropLast: false, seed: o.Seed, prefetch: o.Prefetch, log: log);
        int stepsPerEpoch = loader.BatchesPerEpoch;
        int usableSteps = stepsPerEpoch - stepsPerEpoch % o.AccumIter;
        if (usableSteps == 0) throw new ArgumentException($"{train.Samples.Count} images give {stepsPerEpoch} batches per epoch, fewer than accum_iter {o.AccumIter}");

        var (groups, lrScales) = LayerDecay.AdamWGroups(model, o.PeakLr, o.WeightDecay, o.LayerDecay);
        using var optimizer = new AdamW(groups, o.PeakLr, 0.9, 0.999);
        var schedule = new LearningRateSchedule(o.PeakLr, o.MinLr, o.WarmupEpochs, o.Epochs);
        var mixup = new Mixup(o.Mixup, classes.Count);

        int startEpoch = 0, startStep = 0;
        long optimizerSteps = 0;
        double bestTop1 = double.NaN;
        string lastPath = Path.Combine(o.OutputDir, LastCheckpointName), bestPath = Path.Combine(o.OutputDir, BestCheckpointName);
        var resume = o.Resume == "auto" ? (File.Exists(lastPath) ? lastPath : null) : o.Resume;
        if (resume is not null)
        {
            var header = ClassifierCheckpoint.LoadInto(resume, model, optimizer);
            if (!header.ClassNames.SequenceEqual(classes))
                throw new InvalidDataException($"Checkpoint '{resume}' was trained on classes [{string.Join(", ", header.ClassNames)}], the data has [{string.Join(", ", classes)}]");
            var t = header.Training;
            startEpoch = t["epoch"]?.GetValue<int>() ?? 0;
            startStep = t["step_in_epoch"]?.GetValue<int>() ?? 0;
            optimizerSteps = t["optimizer_steps"]?.GetValue<long>() ?? 0;
            bestTop1 = t["best_top1"]?.GetValue<double>() ?? double.NaN;
            if (t["seed"]?.GetValue<int>() is int seed && seed != o.Seed)
                log($"warning: resuming a run seeded {seed} with seed {o.Seed}: data order and augmentation will differ");
            log($"resumed from {resume}: epoch {startEpoch}, step {startStep}, optimizer step {optimizerSteps}");
        }
        File.WriteAllText(Path.Combine(o.OutputDir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));
        log($"fine-tuning on {train.Samples.Count} images of {classes.Count} classes from {o.TrainDir}" + (val is null ? "" : $", validating on {val.Samples.Count}") +
            $": {stepsPerEpoch} steps/epoch, batch {o.BatchSize} x accum {o.AccumIter}, lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), layer decay {o.LayerDecay}, " +
            $"drop path {o.DropPath}, mixup {o.Mixup.MixupAlpha}/cutmix {o.Mixup.CutmixAlpha}/smoothing {o.Mixup.LabelSmoothing}, " +
            $"RandAugment {(o.RandAugment is null ? "off" : $"n{o.RandAugment.NumOps} m{o.RandAugment.Magnitude}")}, erasing {o.RandomErasingProb}, torch threads {torch.get_num_threads()}");

        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"), resume is null ? null : (long)startEpoch * stepsPerEpoch + startStep);
        StepBookkeeping? book = null;
        double lastEpochLoss = double.NaN;
        bool stoppedByTime = false;
        int epochsDone = startEpoch;
        ClassificationMetrics? lastEval = null;

        JsonObject State(int epoch, int stepInEpoch) => new()
        {
            ["epoch"] = epoch, ["step_in_epoch"] = stepInEpoch, ["optimizer_steps"] = optimizerSteps, ["seed"] = o.Seed,
            ["steps_per_epoch"] = stepsPerEpoch, ["best_top1"] = double.IsNaN(bestTop1) ? null : bestTop1,
            ["rng"] = "data order, augmentation, mixup and drop path derive from (seed, epoch, step)",
            ["options"] = JsonSerializer.SerializeToNode(o with { }),
        };
        void Save(int epoch, int stepInEpoch, string path)
        {
            ClassifierCheckpoint.Save(path, model, classes, State(epoch, stepInEpoch), optimizer);
            book?.CheckpointWritten();
        }
        book = new StepBookkeeping(metrics, progress, log, o.Epochs, o.BatchSize, o.AccumIter, stepsPerEpoch, usableSteps,
            o.TimeLimit, o.CheckpointMinutes, (epoch, next) => Save(epoch, next, lastPath));
        var wall = book.Wall;

        model.train();
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
                    int gi = 0;
                    foreach (var g in optimizer.ParamGroups) g.LearningRate = lr * lrScales[gi++];
                }
                double lossValue;
                using (var scope = NewDisposeScope())
                {
                    Tensor loss;
                    for (int attempt = 1; ; attempt++)
                    {
                        // A LibTorch error in the forward pass (seen once on CPU: a garbage implicit Scalar, "Expected false to be true"
                        // from Scalar::toFloat, which points at a TorchSharp temporary freed by its finalizer during the native call) is
                        // retried: nothing has changed yet (drop path and mixup are re-seeded per step), so the retry computes the same step.
                        try
                        {
                            torch.manual_seed(Seeds.Mix(o.Seed, epoch, step, 0xD4));   // drop path
                            var (images, targets) = mixup.Apply(batch.ImagesTensor(), batch.LabelsTensor(), new Random(Seeds.MixInt(o.Seed, epoch, step, 0x4D49)), out _);
                            loss = SoftTargetCrossEntropy.Loss(model.forward(images), targets);
                            break;
                        }
                        catch (System.Runtime.InteropServices.ExternalException e) when (attempt < 3)
                        {
                            log($"warning: LibTorch error in the forward pass at epoch {epoch}, step {step}; retrying the step ({e.Message.Split('\n')[0].Trim()})");
                        }
                    }
                    lossValue = loss.item<float>();
                    if (!double.IsFinite(lossValue))
                        throw new NonFiniteLossException($"Loss is {lossValue} at epoch {epoch}, step {step}; stopping. The last good checkpoint, if any, is {lastPath}. Try a lower --blr or more warmup.");
                    if (o.AccumIter == 1) loss.backward();
                    else using (var accum = o.AccumIter.ToScalar()) loss.div(accum).backward();
                    if ((step + 1) % o.AccumIter == 0)
                    {
                        if (o.ClipGrad is double clip) nn.utils.clip_grad_norm_(model.parameters(), clip);
                        optimizer.step();
                        optimizer.zero_grad();
                        optimizerSteps++;
                    }
                }
                lossSum += lossValue; lossCount++;
                epochImages += batch.Count;
                if (book.AfterStep(epoch, step, lossValue, lossSum / lossCount, optimizer.ParamGroups.Last().LearningRate, epochImages, epochWatch.Elapsed))
                {
                    stoppedByTime = true;
                    break;
                }
                cancel.ThrowIfCancellationRequested();
            }
            if (stoppedByTime) break;
            lastEpochLoss = lossSum / Math.Max(1, lossCount);
            epochsDone = epoch + 1;
            var trainSeconds = epochWatch.Elapsed.TotalSeconds;
            var entry = new JsonObject
            {
                ["type"] = "epoch", ["iter"] = (long)(epoch + 1) * stepsPerEpoch - 1, ["epoch"] = epoch, ["loss"] = lastEpochLoss,
                ["images_per_s"] = Math.Round(epochImages / trainSeconds, 1), ["train_s"] = Math.Round(trainSeconds, 1),
            };
            bool best = false;
            if (valLoader is not null)
            {
                lastEval = ClassifierEvaluation.Evaluate(model, valLoader, classes, cancel);
                entry["val_top1"] = lastEval.Top1; entry["val_top5"] = lastEval.Top5; entry["val_loss"] = lastEval.MeanLoss;
                best = double.IsNaN(bestTop1) || lastEval.Top1 > bestTop1;
                if (best) bestTop1 = lastEval.Top1;
            }
            entry["elapsed_s"] = Math.Round(wall.Elapsed.TotalSeconds, 2);
            Save(epoch + 1, 0, lastPath);
            if (best) File.Copy(lastPath, bestPath, overwrite: true);
            metrics.Write(entry);
            log($"epoch {epoch + 1}/{o.Epochs}: loss {lastEpochLoss:F4}, {epochImages / trainSeconds:F0} img/s" +
                (lastEval is null ? "" : $", val top-1 {lastEval.Top1:P2} top-5 {lastEval.Top5:P2} (best {bestTop1:P2})") +
                $", {ConsoleProgress.Format(wall.Elapsed)} elapsed");
        }

        if (lastEval is not null)
            File.WriteAllText(Path.Combine(o.OutputDir, "eval.json"), lastEval.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteCurves(metrics.Path, o.OutputDir, $"fine-tuning ({model.Config.Encoder.EmbedDim}x{model.Config.Encoder.Depth}, {size}px, {(o.Init is null ? "scratch" : "from " + Path.GetFileName(o.Init))})");
        if (loader.Unreadable.Count > 0) log($"{loader.Unreadable.Count} unreadable training image(s) were skipped (listed above)");
        var skipped = loader.Unreadable.Concat(valLoader?.Unreadable ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => kv.Value);
        return new FinetuneResult(lastPath, classes, epochsDone, optimizerSteps, lastEpochLoss, lastEval, bestTop1, wall.Elapsed, stoppedByTime, skipped);
    }

    /// <summary>loss-curve.png from the step losses, and accuracy-curve.png from the epoch validation top-1 when there is one.</summary>
    internal static void WriteCurves(string metricsPath, string outputDir, string title)
    {
        MetricsLog.PlotLoss(metricsPath, Path.Combine(outputDir, "loss-curve.png"), title);
        var acc = File.ReadAllLines(metricsPath).Select(l => JsonNode.Parse(l)!)
            .Where(n => n["type"]?.GetValue<string>() == "epoch" && n["val_top1"] is not null)
            .Select(n => ((double)n["epoch"]!.GetValue<int>() + 1, n["val_top1"]!.GetValue<double>() * 100)).ToList();
        if (acc.Count > 0) LossCurvePlot.Write(acc, Path.Combine(outputDir, "accuracy-curve.png"), title, xLabel: "epoch", yLabel: "val top-1 %");
    }
}
