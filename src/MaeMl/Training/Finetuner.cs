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

/// <summary>How a <see cref="Finetuner.Run"/> ended: the last checkpoint (a <see cref="ClassifierCheckpoint"/>), the last epoch's
/// validation metrics (null without a validation set), the best validation top-1 over the epochs (NaN without one), the wall-clock time.</summary>
/// <param name="CheckpointPath">The run's <see cref="Finetuner.LastCheckpointName"/>.</param>
/// <param name="ClassNames">Classes in label order (the training folder's subfolders, sorted).</param>
/// <param name="EpochsDone">Epochs completed, those before a resume included.</param>
/// <param name="OptimizerSteps">Optimizer steps taken, those before a resume included.</param>
/// <param name="LastEpochLoss">Mean training loss of the last epoch completed in this run (NaN when none was).</param>
/// <param name="Validation">Metrics of the last end-of-epoch evaluation in this run; null without a validation set or when no epoch ended.</param>
/// <param name="BestTop1">Best validation top-1 (a fraction) over all epochs, resumed ones included; NaN without a validation set.</param>
/// <param name="Elapsed">Wall-clock time of this run's training loop.</param>
/// <param name="StoppedByTimeLimit">The run stopped at <see cref="FinetuneOptions.TimeLimit"/> with a checkpoint, before the schedule's end.</param>
/// <param name="SkippedImages">Unreadable training and validation images, with the reason.</param>
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
    /// <summary>The run's checkpoint in the output folder (<c>checkpoint-last.maeml</c>, a <see cref="ClassifierCheckpoint"/>), rewritten at every save.</summary>
    public const string LastCheckpointName = "checkpoint-last" + MaeCheckpoint.Extension;
    /// <summary>Copy of the epoch checkpoint with the best validation top-1 so far (<c>checkpoint-best.maeml</c>; only with a validation set).</summary>
    public const string BestCheckpointName = "checkpoint-best" + MaeCheckpoint.Extension;
    readonly FinetuneOptions options;
    readonly ConsoleProgress progress;
    readonly Action<string> log;

    /// <summary>A run of <paramref name="options"/> (validated: throws <see cref="ArgumentException"/>); progress goes to
    /// <paramref name="progress"/> (default: a console bar), messages to <paramref name="log"/> (default: progress lines).</summary>
    public Finetuner(FinetuneOptions options, ConsoleProgress? progress = null, Action<string>? log = null)
    {
        this.options = options.Validate();
        this.progress = progress ?? new ConsoleProgress();
        this.log = log ?? this.progress.Line;
    }

    /// <summary>
    /// Fine-tunes (or resumes, see <see cref="FinetuneOptions.Resume"/>) to the end of the schedule or the time limit, writing
    /// <c>run.json</c>, <c>metrics.jsonl</c>, <see cref="LastCheckpointName"/> (every epoch, every <see cref="FinetuneOptions.CheckpointMinutes"/>
    /// and at the time limit), <c>loss-curve.png</c> and, with a validation set, <see cref="BestCheckpointName"/>, <c>eval.json</c>
    /// (the last evaluation) and <c>accuracy-curve.png</c> to the output folder. Throws <see cref="NonFiniteLossException"/> when training diverges (the last good
    /// checkpoint is kept) and <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires, at the next accumulation boundary (or after the epoch's
    /// evaluation) with <see cref="LastCheckpointName"/> written first, so <c>Resume = "auto"</c> continues it.
    /// </summary>
    public FinetuneResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        using var folderLock = RunFolder.Open(o.OutputDir, log);
        var (train, val) = ClassificationData.Load(o.TrainDir, o.TrainImages, o.LimitPerClass, o.ValDir, o.ValImages, o.ValLimitPerClass);
        var classes = train.Classes;

        torch.manual_seed(o.Seed);
        using var model = ClassifierInitialization.Create(o.Init, o.Model, classes.Count, o.GlobalPool, o.DropPath, log);
        int size = model.Config.Encoder.ImageSize;
        var loader = new PrefetchingBatchLoader(train.Samples,
            SampleTransforms.Finetune(size, o.MinCropScale, o.RandAugment, o.RandomErasingProb > 0 ? new RandomErasing(o.RandomErasingProb) : null),
            size, o.BatchSize, shuffle: true, dropLast: true, seed: o.Seed, prefetch: o.Prefetch, log: log);
        var valLoader = val is null ? null : new PrefetchingBatchLoader(val.Samples, SampleTransforms.ResizeCenterCrop(size, o.EvalCropPct),
            size, o.BatchSize, shuffle: false, dropLast: false, seed: o.Seed, prefetch: o.Prefetch, log: log);
        var device = TrainingDevice.Resolve(o.Device);
        model.to(device);   // before the optimizer takes the parameters
        var precision = PrecisionProbe.Resolve(o.Precision, model.Config.Encoder, o.BatchSize, log, fullSequence: true, device: device);
        using var mixed = precision == TrainingPrecision.BFloat16
            ? new BFloat16MasterWeights<VisionTransformer>(model, () => new VisionTransformer(model.Config))
            : null;
        var (groups, lrScales) = LayerDecay.AdamWGroups(model, o.PeakLr, o.WeightDecay, o.LayerDecay);
        using var optimizer = new AdamW(groups, o.PeakLr, 0.9, 0.999);
        if (o.ClipGrad is null) mixed?.FuseInto(optimizer);   // clipping reads the master gradients before the step
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
        RunFolder.WriteText(Path.Combine(o.OutputDir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));
        int stepsPerEpoch = loader.BatchesPerEpoch;
        log($"fine-tuning on {train.Samples.Count} images of {classes.Count} classes from {train.Root}" + (val is null ? "" : $", validating on {val.Samples.Count}") +
            $": {stepsPerEpoch} steps/epoch, batch {o.BatchSize} x accum {o.AccumIter}, lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), layer decay {o.LayerDecay}, " +
            $"drop path {o.DropPath}, mixup {o.Mixup.MixupAlpha}/cutmix {o.Mixup.CutmixAlpha}/smoothing {o.Mixup.LabelSmoothing}, " +
            $"RandAugment {(o.RandAugment is null ? "off" : $"n{o.RandAugment.NumOps} m{o.RandAugment.Magnitude}")}, erasing {o.RandomErasingProb}, {precision}, torch threads {torch.get_num_threads()}");

        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"), resume is null ? null : (long)startEpoch * stepsPerEpoch + startStep);
        string? lastGood = null;
        try
        {
            if (File.Exists(lastPath) && ClassifierCheckpoint.ReadHeader(lastPath).Training is var lt)
                lastGood = $"{lastPath} (epoch {lt["epoch"]?.GetValue<int>() ?? 0}, step {lt["step_in_epoch"]?.GetValue<int>() ?? 0})";
        }
        catch (Exception e) when (e is InvalidDataException or IOException or InvalidOperationException or FormatException) { }
        var loop = new TrainingLoop<ImageBatch>(loader, new TorchOptimizer(optimizer), schedule, lrScales, o.Epochs, o.BatchSize, o.AccumIter, o.TimeLimit, o.CheckpointMinutes,
            metrics, progress, log, lastPath, lastGood, $"the {train.Samples.Count} images of '{train.Root}'");
        var task = new FinetuneTask(o, model, mixed, optimizer, mixup, classes, valLoader, stepsPerEpoch, bestPath, bestTop1);
        model.train();
        mixed?.Work.train();
        var run = loop.Run(task, startEpoch, startStep, optimizerSteps, cancel);
        var lastEval = task.LastEval;
        bestTop1 = task.BestTop1;

        if (lastEval is not null)
            RunFolder.WriteText(Path.Combine(o.OutputDir, "eval.json"), lastEval.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteCurves(metrics.Path, o.OutputDir, $"fine-tuning ({model.Config.Encoder.EmbedDim}x{model.Config.Encoder.Depth}, {size}px, {(o.Init is null ? "scratch" : "from " + Path.GetFileName(o.Init))})");
        if (loader.Unreadable.Count > 0) log($"{loader.Unreadable.Count} unreadable training image(s) were skipped (listed above)");
        var skipped = loader.Unreadable.Concat(valLoader?.Unreadable ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => kv.Value);
        return new FinetuneResult(lastPath, classes, run.EpochsDone, run.OptimizerSteps, run.LastEpochLoss, lastEval, bestTop1, run.Elapsed, run.StoppedByTimeLimit, skipped);
    }

    /// <summary>Fine-tuning as a <see cref="TrainingTask{TBatch}"/>: mixup/cutmix + soft-target cross-entropy with per-step seeded drop path,
    /// gradient clipping, validation after every epoch with a best-model copy, <see cref="ClassifierCheckpoint"/>s.</summary>
    sealed class FinetuneTask(FinetuneOptions o, VisionTransformer model, BFloat16MasterWeights<VisionTransformer>? mixed, AdamW optimizer, Mixup mixup,
        IReadOnlyList<string> classes, PrefetchingBatchLoader? valLoader, int stepsPerEpoch, string bestPath, double bestTop1) : TrainingTask<ImageBatch>
    {
        bool best;
        readonly Device device = TrainingDevice.Of(model);   // the task is made after the model moved there
        readonly VisionTransformer compute = mixed?.Work ?? model;   // forward and backward run here (the bfloat16 copy with mixed precision)

        public double BestTop1 { get; private set; } = bestTop1;
        public ClassificationMetrics? LastEval { get; private set; }

        public override Tensor Loss(ImageBatch batch, int epoch, int step)
        {
            torch.manual_seed(Seeds.Mix(o.Seed, epoch, step, 0xD4));   // drop path
            var (images, targets) = mixup.Apply(batch.ImagesTensor().On(device), batch.LabelsTensor().On(device), new Random(Seeds.MixInt(o.Seed, epoch, step, 0x4D49)), out _);
            if (mixed is null) return SoftTargetCrossEntropy.Loss(model.forward(images), targets);
            var logits = compute.forward(images.to_type(ScalarType.BFloat16));
            return SoftTargetCrossEntropy.Loss(logits.to_type(ScalarType.Float32), targets);   // the loss in float32
        }

        public override void BeforeForward() => mixed?.PullWeights();
        public override void AfterBackward() => mixed?.PushGradients();

        public override void BeforeOptimizerStep()
        {
            if (o.ClipGrad is double clip) nn.utils.clip_grad_norm_(model.parameters(), clip);
        }

        public override string EndOfEpoch(int epoch, JsonObject entry)
        {
            best = false;
            if (valLoader is null || ((epoch + 1) % o.EvalEvery != 0 && epoch + 1 != o.Epochs)) return "";
            var eval = ClassifierEvaluation.Evaluate(model, valLoader, classes);   // not cancelled: the loop stops after this epoch's checkpoint
            model.train();
            LastEval = eval;
            entry["val_top1"] = eval.Top1; entry["val_top5"] = eval.Top5; entry["val_loss"] = eval.MeanLoss;
            best = double.IsNaN(BestTop1) || eval.Top1 > BestTop1;
            if (best) BestTop1 = eval.Top1;
            return $", val top-1 {eval.Top1:P2} top-5 {eval.Top5:P2} (best {BestTop1:P2})";
        }

        public override void AfterEpochCheckpoint(int epoch, string lastPath)
        {
            if (best) RunFolder.Copy(lastPath, bestPath);   // atomic, and never through a planted link
        }

        public override void Save(string path, int epoch, int nextStep, long optimizerSteps) =>
            ClassifierCheckpoint.Save(path, model, classes, new JsonObject
            {
                ["epoch"] = epoch, ["step_in_epoch"] = nextStep, ["optimizer_steps"] = optimizerSteps, ["seed"] = o.Seed,
                ["steps_per_epoch"] = stepsPerEpoch, ["best_top1"] = double.IsNaN(BestTop1) ? null : BestTop1,
                ["rng"] = "data order, augmentation, mixup and drop path derive from (seed, epoch, step)",
                ["options"] = JsonSerializer.SerializeToNode(o with { }),
            }, optimizer);
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
