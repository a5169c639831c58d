using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Evaluation;
using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>How a <see cref="LinearProbe.Run"/> ended: the classifier checkpoint (BatchNorm folded into the head), validation metrics
/// (null without a validation set), final training top-1 of the head, and where the time went.</summary>
/// <param name="CheckpointPath">The saved <see cref="LinearProbe.CheckpointName"/>.</param>
/// <param name="ClassNames">Classes in label order (the training folder's subfolders, sorted).</param>
/// <param name="Validation">Metrics of the final head on the validation set; null without one.</param>
/// <param name="TrainTop1">Top-1 (a fraction) of the head on the last epoch's training batches, measured while training.</param>
/// <param name="FeatureTime">Time spent computing cached encoder features (training set when cached, and the validation set).</param>
/// <param name="HeadTrainingTime">Time spent training the head; without cached features it includes encoding each training batch.</param>
/// <param name="Elapsed">Wall-clock time of the whole run.</param>
/// <param name="SkippedImages">Unreadable training and validation images, with the reason.</param>
public sealed record LinearProbeResult(string CheckpointPath, IReadOnlyList<string> ClassNames, ClassificationMetrics? Validation, double TrainTop1,
    TimeSpan FeatureTime, TimeSpan HeadTrainingTime, TimeSpan Elapsed, IReadOnlyDictionary<string, string> SkippedImages);

/// <summary>
/// Linear probing as the official <c>main_linprobe.py</c>: the encoder is frozen, a <c>BatchNorm1d(affine=False, eps=1e-6)</c>
/// followed by a linear head (trunc-normal std 0.01) is trained with LARS (or SGD with momentum) and cross entropy, no weight
/// decay, warmup + cosine. Features are those of the frozen encoder; see <see cref="LinearProbeOptions.CacheFeatures"/> for the
/// cached (default) and per-epoch augmented modes. The result is saved as a plain <see cref="VisionTransformer"/> classifier:
/// BatchNorm's running statistics are folded into the head, so <c>maeml eval</c>, ONNX export and ML.NET use it unchanged.
/// </summary>
public sealed class LinearProbe
{
    /// <summary>The probe's result in the output folder (<c>checkpoint-linprobe.maeml</c>, a <see cref="ClassifierCheckpoint"/>).</summary>
    public const string CheckpointName = "checkpoint-linprobe" + MaeCheckpoint.Extension;
    readonly LinearProbeOptions options;
    readonly ConsoleProgress progress;
    readonly Action<string> log;

    /// <summary>A probe of <paramref name="options"/> (validated: throws <see cref="ArgumentException"/>); progress goes to
    /// <paramref name="progress"/> (default: a console bar), messages to <paramref name="log"/> (default: progress lines).</summary>
    public LinearProbe(LinearProbeOptions options, ConsoleProgress? progress = null, Action<string>? log = null)
    {
        this.options = options.Validate();
        this.progress = progress ?? new ConsoleProgress();
        this.log = log ?? this.progress.Line;
    }

    /// <summary>
    /// Trains the head for all epochs on <see cref="TrainingLoop{TBatch}"/> (not resumable: a probe is short) and writes <see cref="CheckpointName"/>, <c>run.json</c>, <c>metrics.jsonl</c>,
    /// <c>loss-curve.png</c> and, with a validation set, <c>eval.json</c> and <c>accuracy-curve.png</c> to the output folder. Throws
    /// <see cref="ArgumentException"/> for a single class or fewer than 2 readable training images, and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires (during the head's training: at the next step).
    /// </summary>
    public LinearProbeResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        using var folderLock = RunFolder.Open(o.OutputDir, log);
        var wall = Stopwatch.StartNew();
        var (train, val) = ClassificationData.Load(o.TrainDir, o.TrainImages, o.LimitPerClass, o.ValDir, o.ValImages, o.ValLimitPerClass);
        var classes = train.Classes;

        torch.manual_seed(o.Seed);
        using var model = ClassifierInitialization.Create(o.Init, o.Model, classes.Count, o.GlobalPool, 0, log);
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        int size = model.Config.Encoder.ImageSize, dim = model.Config.Encoder.EmbedDim, c = classes.Count;
        using var bn = nn.BatchNorm1d(dim, eps: 1e-6, affine: false);
        using var head = nn.Linear(dim, c);
        using (no_grad()) { nn.init.trunc_normal_(head.weight!, std: 0.01); nn.init.zeros_(head.bias!); }
        var device = TrainingDevice.Resolve(o.Device);
        model.to(device); bn.to(device); head.to(device);   // before the optimizer takes the head's parameters

        var evalTransform = SampleTransforms.ResizeCenterCrop(size, o.EvalCropPct);
        PrefetchingBatchLoader Loader(IReadOnlyList<ImageSample> samples, SampleTransform transform, int batchSize, bool shuffle) =>
            new(samples, transform, size, batchSize, shuffle, dropLast: shuffle, seed: o.Seed, prefetch: o.Prefetch, log: log);
        // cached: features of the eval transform computed once; otherwise each training batch is augmented and encoded as it comes
        var trainLoader = o.CacheFeatures ? Loader(train.Samples, evalTransform, o.FeatureBatchSize, shuffle: false)
            : Loader(train.Samples, SampleTransforms.Pretrain(size, o.MinCropScale), (int)Math.Min(o.BatchSize, train.Samples.Count), shuffle: true);
        var valLoader = val is null ? null : Loader(val.Samples, evalTransform, o.FeatureBatchSize, shuffle: false);

        var featureWatch = new Stopwatch();
        (Tensor Features, Tensor Labels) Features(PrefetchingBatchLoader loader)
        {
            featureWatch.Start();
            var feats = new List<Tensor>();
            var labels = new List<long>();
            using (no_grad())
                foreach (var batch in loader.Epoch(0, 0, cancel))
                {
                    using var images = batch.ImagesTensor().On(device);
                    feats.Add(model.ForwardFeatures(images));
                    labels.AddRange(batch.Labels.Take(batch.Count).Select(l => (long)l));
                }
            var all = cat(feats, 0);
            foreach (var f in feats) f.Dispose();
            featureWatch.Stop();
            return (all, tensor(labels.ToArray()).On(device));
        }

        log($"linear probe on {train.Samples.Count} images of {c} classes" + (val is null ? "" : $", validating on {val.Samples.Count}") +
            $": {(o.GlobalPool ? "global pool" : "cls token")} features ({dim}), {(o.CacheFeatures ? "computed once (eval transform)" : "computed per batch (RandomResizedCrop + flip)")}, " +
            $"{o.Optimizer}, lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), batch {o.BatchSize}, {o.Epochs} epochs, torch threads {torch.get_num_threads()}");
        var cached = o.CacheFeatures ? Features(trainLoader) : default;
        var valSet = valLoader is null ? default : Features(valLoader);
        if (o.CacheFeatures)
        {
            log($"features of {cached.Features.shape[0]} training and {(valLoader is null ? 0 : valSet.Features.shape[0])} validation images in {featureWatch.Elapsed.TotalSeconds:F1} s");
            if (cached.Features.shape[0] < 2) throw new ArgumentException($"Only {cached.Features.shape[0]} readable training images: a linear probe needs at least 2");
        }
        RunFolder.WriteText(Path.Combine(o.OutputDir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));

        using var lars = o.Optimizer == LinearProbeOptimizer.Lars ? new Lars(head.parameters(), o.PeakLr, o.WeightDecay) : null;
        using var sgd = o.Optimizer == LinearProbeOptimizer.Sgd ? torch.optim.SGD(head.parameters(), o.PeakLr, momentum: 0.9, weight_decay: o.WeightDecay) : null;
        ILoopOptimizer optimizer = lars is not null ? lars : new TorchOptimizer(sgd!);
        var schedule = new LearningRateSchedule(o.PeakLr, o.MinLr, o.WarmupEpochs, o.Epochs);
        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"));
        var headWatch = Stopwatch.StartNew();
        (double TrainTop1, ClassificationMetrics? LastEval) Train<TBatch>(IBatchSource<TBatch> source, int batchSize,
            Func<TBatch, (Tensor Features, Tensor Labels)> batchFeatures) where TBatch : ITrainingBatch
        {
            var task = new ProbeTask<TBatch>(bn, head, classes, valLoader is null ? null : valSet, batchFeatures);
            var loop = new TrainingLoop<TBatch>(source, optimizer, schedule, null, o.Epochs, batchSize, 1, null, double.PositiveInfinity,
                metrics, progress, log, null, null, $"the {train.Samples.Count} images of '{train.Root}'");
            bn.train();
            loop.Run(task, 0, 0, 0, cancel);
            return (task.TrainTop1, task.LastEval);
        }
        RowBatches? rows = o.CacheFeatures ? new RowBatches((int)cached.Features.shape[0], o.BatchSize, o.Seed) : null;
        var (trainTop1, lastEval) = rows is not null
            ? Train(rows, rows.BatchSize, batch =>
            {
                var index = tensor(batch.Rows).On(device);
                return (cached.Features.index_select(0, index), cached.Labels.index_select(0, index));
            })
            : Train(trainLoader, trainLoader.BatchSize, batch =>
            {
                using var images = batch.ImagesTensor().On(device);
                using var _ = no_grad();
                return (model.ForwardFeatures(images), batch.LabelsTensor().On(device));
            });
        headWatch.Stop();

        FoldBatchNorm(bn, head, model.Head!);
        var path = Path.Combine(o.OutputDir, CheckpointName);
        ClassifierCheckpoint.Save(path, model, classes, new JsonObject
        {
            ["recipe"] = "linprobe", ["epochs"] = o.Epochs, ["seed"] = o.Seed, ["val_top1"] = lastEval?.Top1, ["train_top1"] = trainTop1,
            ["options"] = JsonSerializer.SerializeToNode(o with { }),
        });
        if (lastEval is not null)
            RunFolder.WriteText(Path.Combine(o.OutputDir, "eval.json"), lastEval.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Finetuner.WriteCurves(metrics.Path, o.OutputDir, $"linear probe ({dim}-d {(o.GlobalPool ? "mean" : "cls")} features, {(o.Init is null ? "random encoder" : Path.GetFileName(o.Init))})");
        if (o.CacheFeatures) { cached.Features.Dispose(); cached.Labels.Dispose(); }
        if (valLoader is not null) { valSet.Features.Dispose(); valSet.Labels.Dispose(); }
        var skipped = trainLoader.Unreadable.Concat(valLoader?.Unreadable ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => kv.Value);
        return new LinearProbeResult(path, classes, lastEval, trainTop1, featureWatch.Elapsed, headWatch.Elapsed, wall.Elapsed, skipped);
    }

    /// <summary>The probe's half of <see cref="TrainingLoop{TBatch}"/>: cross entropy of <c>head(bn(features))</c>, the training top-1
    /// of each epoch, and the metrics of the cached validation features after every epoch.</summary>
    sealed class ProbeTask<TBatch>(BatchNorm1d bn, Linear head, IReadOnlyList<string> classes, (Tensor Features, Tensor Labels)? val,
        Func<TBatch, (Tensor Features, Tensor Labels)> batchFeatures) : TrainingTask<TBatch> where TBatch : ITrainingBatch
    {
        long correct, seen;
        public double TrainTop1 { get; private set; } = double.NaN;
        public ClassificationMetrics? LastEval { get; private set; }

        public override Tensor Loss(TBatch batch, int epoch, int step)
        {
            var (feats, y) = batchFeatures(batch);
            var logits = head.forward(bn.forward(feats));
            using (no_grad()) { correct += logits.argmax(1).eq(y).sum().item<long>(); seen += y.shape[0]; }
            return nn.functional.cross_entropy(logits, y);
        }

        public override string EndOfEpoch(int epoch, JsonObject entry)
        {
            TrainTop1 = (double)correct / Math.Max(1, seen);
            correct = seen = 0;
            entry["train_top1"] = TrainTop1;
            if (val is not { } v) return $", train top-1 {TrainTop1:P2}";
            LastEval = Score(bn, head, v.Features, v.Labels, classes);
            entry["val_top1"] = LastEval.Top1; entry["val_top5"] = LastEval.Top5; entry["val_loss"] = LastEval.MeanLoss;
            return $", train top-1 {TrainTop1:P2}, val top-1 {LastEval.Top1:P2}";
        }

        public override string Advice => "Try a lower --blr.";
    }

    static ClassificationMetrics Score(BatchNorm1d bn, Linear head, Tensor features, Tensor labels, IReadOnlyList<string> classes)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        bn.eval();
        var logits = head.forward(bn.forward(features));
        var loss = nn.functional.cross_entropy(logits, labels).item<float>();
        var metrics = new ClassificationMetrics(classes);
        metrics.Add(logits.cpu().contiguous().data<float>().ToArray(), labels.cpu().data<long>().ToArray().Select(l => (int)l).ToArray(), loss);
        bn.train();
        return metrics;
    }

    /// <summary>Writes <c>head(bn(x))</c> with BatchNorm in eval mode into one linear layer: W' = W / sqrt(var + eps), b' = b - W' mean.</summary>
    public static void FoldBatchNorm(BatchNorm1d bn, Linear head, Linear target)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var scale = (bn.running_var! + 1e-6).rsqrt();                    // [D]
        var weight = head.weight! * scale.unsqueeze(0);                    // [C, D]
        var bias = head.bias! - weight.matmul(bn.running_mean!);
        target.weight!.copy_(weight);
        target.bias!.copy_(bias);
    }
}
