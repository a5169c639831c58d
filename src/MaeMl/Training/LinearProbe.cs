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
/// <param name="FeatureTime">Time spent computing encoder features.</param>
/// <param name="HeadTrainingTime">Time spent training the head.</param>
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
    /// Trains the head for all epochs (not resumable) and writes <see cref="CheckpointName"/>, <c>run.json</c>, <c>metrics.jsonl</c>,
    /// <c>loss-curve.png</c> and, with a validation set, <c>eval.json</c> and <c>accuracy-curve.png</c> to the output folder. Throws
    /// <see cref="ArgumentException"/> for a single class or fewer than 2 readable training images, and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires.
    /// </summary>
    public LinearProbeResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        Directory.CreateDirectory(o.OutputDir);
        using var folderLock = RunFolder.Lock(o.OutputDir);   // one run per folder; the second gets one line naming the holder
        RunFolder.SweepStaleTemporaries(o.OutputDir, log);
        var wall = Stopwatch.StartNew();
        var train = ImageFolder.Labelled(o.TrainDir, o.LimitPerClass);
        var classes = train.Classes;
        if (classes.Count < 2) throw new ArgumentException($"'{o.TrainDir}' has a single class folder ({classes[0]}): classification needs at least two");
        var val = o.ValDir is null ? null : ImageFolder.Labelled(o.ValDir, o.ValLimitPerClass, classes);

        torch.manual_seed(o.Seed);
        using var model = ClassifierInitialization.Create(o.Init, o.Model, classes.Count, o.GlobalPool, 0, log);
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        int size = model.Config.Encoder.ImageSize, dim = model.Config.Encoder.EmbedDim, c = classes.Count;
        using var bn = nn.BatchNorm1d(dim, eps: 1e-6, affine: false);
        using var head = nn.Linear(dim, c);
        using (no_grad()) { nn.init.trunc_normal_(head.weight!, std: 0.01); nn.init.zeros_(head.bias!); }

        var evalTransform = SampleTransforms.ResizeCenterCrop(size, o.EvalCropPct);
        PrefetchingBatchLoader Loader(IReadOnlyList<ImageSample> samples, SampleTransform transform) =>
            new(samples, transform, size, o.FeatureBatchSize, shuffle: false, dropLast: false, seed: o.Seed, prefetch: o.Prefetch, log: log);
        var trainLoader = Loader(train.Samples, o.CacheFeatures ? evalTransform : SampleTransforms.Pretrain(size, o.MinCropScale));
        var valLoader = val is null ? null : Loader(val.Samples, evalTransform);

        var featureWatch = new Stopwatch();
        (Tensor Features, Tensor Labels) Features(PrefetchingBatchLoader loader, int epoch)
        {
            featureWatch.Start();
            var feats = new List<Tensor>();
            var labels = new List<long>();
            using (no_grad())
                foreach (var batch in loader.Epoch(epoch, 0, cancel))
                {
                    using var images = batch.ImagesTensor();
                    feats.Add(model.ForwardFeatures(images));
                    labels.AddRange(batch.Labels.Take(batch.Count).Select(l => (long)l));
                }
            var all = cat(feats, 0);
            foreach (var f in feats) f.Dispose();
            featureWatch.Stop();
            return (all, tensor(labels.ToArray()));
        }

        log($"linear probe on {train.Samples.Count} images of {c} classes" + (val is null ? "" : $", validating on {val.Samples.Count}") +
            $": {(o.GlobalPool ? "global pool" : "cls token")} features ({dim}), {(o.CacheFeatures ? "computed once (eval transform)" : "recomputed every epoch (RandomResizedCrop + flip)")}, " +
            $"{o.Optimizer}, lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), batch {o.BatchSize}, {o.Epochs} epochs, torch threads {torch.get_num_threads()}");
        var cached = o.CacheFeatures ? Features(trainLoader, 0) : default;
        var valSet = valLoader is null ? default : Features(valLoader, 0);
        if (o.CacheFeatures) log($"features of {cached.Features.shape[0]} training and {(valLoader is null ? 0 : valSet.Features.shape[0])} validation images in {featureWatch.Elapsed.TotalSeconds:F1} s");
        RunFolder.WriteText(Path.Combine(o.OutputDir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));

        using var lars = o.Optimizer == LinearProbeOptimizer.Lars ? new Lars(head.parameters(), o.PeakLr, o.WeightDecay) : null;
        using var sgd = o.Optimizer == LinearProbeOptimizer.Sgd ? torch.optim.SGD(head.parameters(), o.PeakLr, momentum: 0.9, weight_decay: o.WeightDecay) : null;
        var schedule = new LearningRateSchedule(o.PeakLr, o.MinLr, o.WarmupEpochs, o.Epochs);
        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"));
        var headWatch = new Stopwatch();
        ClassificationMetrics? lastEval = null;
        double trainTop1 = double.NaN;
        long n = o.CacheFeatures ? cached.Features.shape[0] : 0;
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            var (feats, labels) = o.CacheFeatures ? cached : Features(trainLoader, epoch);
            n = feats.shape[0];
            int batchSize = (int)Math.Min(o.BatchSize, n);
            int steps = (int)(n / batchSize);
            if (steps == 0 || batchSize < 2) throw new ArgumentException($"Only {n} readable training images: a linear probe needs at least 2");
            headWatch.Start();
            var order = Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
            new Random(Seeds.MixInt(o.Seed, epoch, 0x11B)).Shuffle(order);
            bn.train();
            double lossSum = 0; long correct = 0;
            for (int step = 0; step < steps; step++)
            {
                double lr = schedule.At((double)step / steps + epoch);
                if (lars is not null) lars.LearningRate = lr;
                else foreach (var g in sgd!.ParamGroups) g.LearningRate = lr;
                using var scope = NewDisposeScope();
                var idx = tensor(order.AsSpan(step * batchSize, batchSize).ToArray());
                var y = labels.index_select(0, idx);
                var logits = head.forward(bn.forward(feats.index_select(0, idx)));
                var loss = nn.functional.cross_entropy(logits, y);
                loss.backward();
                if (lars is not null) { lars.Step(); lars.ZeroGrad(); } else { sgd!.step(); sgd.zero_grad(); }
                var lossValue = loss.item<float>();
                lossSum += lossValue;
                correct += logits.argmax(1).eq(y).sum().item<long>();
                metrics.Write(new JsonObject
                {
                    ["type"] = "step", ["iter"] = (long)epoch * steps + step, ["epoch"] = epoch, ["step"] = step, ["epoch_f"] = epoch + (double)(step + 1) / steps,
                    ["loss"] = lossValue, ["lr"] = lr, ["elapsed_s"] = Math.Round(wall.Elapsed.TotalSeconds, 2),
                });
            }
            headWatch.Stop();
            if (!o.CacheFeatures) { feats.Dispose(); labels.Dispose(); }
            trainTop1 = (double)correct / (steps * batchSize);
            var entry = new JsonObject { ["type"] = "epoch", ["iter"] = (long)(epoch + 1) * steps - 1, ["epoch"] = epoch, ["loss"] = lossSum / steps, ["train_top1"] = trainTop1 };
            if (valLoader is not null)
            {
                lastEval = Score(bn, head, valSet.Features, valSet.Labels, classes);
                entry["val_top1"] = lastEval.Top1; entry["val_top5"] = lastEval.Top5; entry["val_loss"] = lastEval.MeanLoss;
            }
            entry["elapsed_s"] = Math.Round(wall.Elapsed.TotalSeconds, 2);
            metrics.Write(entry);
            progress.Report(epoch, o.Epochs, steps, steps, lossSum / steps, schedule.At(epoch + 1), 0, TimeSpan.Zero);
            if (epoch == o.Epochs - 1 || (epoch + 1) % Math.Max(1, o.Epochs / 10) == 0)
                log($"epoch {epoch + 1}/{o.Epochs}: loss {lossSum / steps:F4}, train top-1 {trainTop1:P2}" + (lastEval is null ? "" : $", val top-1 {lastEval.Top1:P2}"));
            cancel.ThrowIfCancellationRequested();
        }

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

    static ClassificationMetrics Score(BatchNorm1d bn, Linear head, Tensor features, Tensor labels, IReadOnlyList<string> classes)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        bn.eval();
        var logits = head.forward(bn.forward(features));
        var loss = nn.functional.cross_entropy(logits, labels).item<float>();
        var metrics = new ClassificationMetrics(classes);
        metrics.Add(logits.contiguous().data<float>().ToArray(), labels.data<long>().ToArray().Select(l => (int)l).ToArray(), loss);
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
