using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Visualization;
using TorchSharp;
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

    static string Describe(MaeConfig c) => $"img {c.ImageSize}, patch {c.PatchSize}, {c.EmbedDim}x{c.Depth} + decoder {c.DecoderEmbedDim}x{c.DecoderDepth}, mask {c.MaskRatio}";

    /// <summary>The starting weights of a continued-pretraining run (see <see cref="PretrainOptions.Init"/>).</summary>
    MaskedAutoencoderViT LoadInit(PretrainOptions o)
    {
        var load = (o.InitLoad ?? new Interop.MaeLoadOptions()) with { AllowMissingDecoder = true };
        var mae = Interop.MaeModelFile.LoadMae(o.Init!, load, out var report);
        foreach (var note in report.Notes) log($"  {note}");
        var config = mae.Config with { MaskRatio = o.Model.MaskRatio, NormPixLoss = o.Model.NormPixLoss };
        log($"continued pretraining from {o.Init}: img {config.ImageSize}, patch {config.PatchSize}, encoder {config.EmbedDim}x{config.Depth} " +
            $"({config.NumHeads} heads), decoder {config.DecoderEmbedDim}x{config.DecoderDepth}; {report.Loaded.Count} tensors loaded" +
            (report.Initialised.Count > 0 ? $", freshly initialised: {string.Join(", ", report.Initialised)}" : "") + "; new schedule and optimizer");
        if (config == mae.Config) return mae;
        var copy = new MaskedAutoencoderViT(config);
        using (no_grad())
        {
            var source = mae.state_dict();
            foreach (var (name, p) in copy.state_dict()) p.copy_(source[name]);
        }
        mae.Dispose();
        return copy;
    }

    public PretrainResult Run(CancellationToken cancel = default)
    {
        var o = options;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        Directory.CreateDirectory(o.OutputDir);
        using var folderLock = RunFolder.Lock(o.OutputDir);
        RunFolder.SweepStaleTemporaries(o.OutputDir, log);
        torch.manual_seed(o.Seed);
        string lastPath = Path.Combine(o.OutputDir, LastCheckpointName);
        var resume = o.Resume == "auto" ? (File.Exists(lastPath) ? lastPath : null) : o.Resume;
        using var initial = resume is null && o.Init is not null ? LoadInit(o) : null;
        if (initial is not null) o = o with { Model = initial.Config };
        if (resume is not null && MaeCheckpoint.ReadHeader(resume).Config is { } resumed && resumed != o.Model)
        {
            if (o.Init is null) throw new ArgumentException($"The checkpoint {resume} holds another architecture ({Describe(resumed)}) than this run's ({Describe(o.Model)})");
            o = o with { Model = resumed };   // a continued-pretraining run resumes with the architecture it started from
        }
        using var model = new MaskedAutoencoderViT(o.Model);
        if (initial is not null)
        {
            using var _ = no_grad();
            var source = initial.state_dict();
            foreach (var (name, p) in model.state_dict()) p.copy_(source[name]);
        }
        var folder = ImageFolder.Unlabelled(o.DataDir, o.Limit, exclude: o.OutputDir);
        var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.Pretrain(o.Model.ImageSize, o.MinCropScale),
            o.Model.ImageSize, o.BatchSize, shuffle: true, dropLast: true, seed: o.Seed, prefetch: o.Prefetch, log: log);
        int stepsPerEpoch = loader.BatchesPerEpoch;
        int usableSteps = stepsPerEpoch - stepsPerEpoch % o.AccumIter;
        if (usableSteps == 0) throw new ArgumentException($"{folder.Samples.Count} images give {stepsPerEpoch} batches per epoch, fewer than accum_iter {o.AccumIter}");
        var groups = ParameterGroups.AdamWGroups(model, o.PeakLr, o.WeightDecay);
        using var optimizer = new AdamW(groups, o.PeakLr, 0.9, 0.95);   // MaeMl's: no temporary Scalars, TorchSharp's state format
        var precision = PrecisionProbe.Resolve(o.Precision, o.Model, o.BatchSize, log);
        using var mixed = precision == TrainingPrecision.BFloat16 ? new BFloat16MasterWeights(model) : null;
        var compute = mixed?.Work ?? model;
        var schedule = new LearningRateSchedule(o.PeakLr, o.MinLr, o.WarmupEpochs, o.Epochs);

        int startEpoch = 0, startStep = 0;
        long optimizerSteps = 0;
        string? lastGood = null;   // checkpoint-last and the point it holds, for messages
        try
        {
            if (File.Exists(lastPath) && MaeCheckpoint.ReadHeader(lastPath).Training is var lt)
                lastGood = $"{lastPath} (epoch {lt["epoch"]?.GetValue<int>() ?? 0}, step {lt["step_in_epoch"]?.GetValue<int>() ?? 0})";
        }
        catch (Exception e) when (e is InvalidDataException or IOException or InvalidOperationException or FormatException) { }
        string Kept() => lastGood is null ? $"No checkpoint was written ({LastCheckpointName} does not exist)." : $"The last good checkpoint, {lastGood}, is untouched.";
        if (resume is not null && o.Init is not null) log($"note: {resume} exists, so the run continues from it; --init {o.Init} only starts new runs");
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
                    if (o.AccumIter == 1) output.Loss.backward();
                    else using (var accum = o.AccumIter.ToScalar()) output.Loss.div(accum).backward();
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
        MetricsLog.PlotLoss(metrics.Path, curve, $"MAE pretraining loss ({o.Model.EmbedDim}x{o.Model.Depth}, {o.Model.ImageSize}px)");
        if (loader.Unreadable.Count > 0) log($"{loader.Unreadable.Count} unreadable image(s) were skipped (listed above)");
        return new PretrainResult(lastPath, epochsDone, optimizerSteps, lastEpochLoss, imagesSeen / Math.Max(1e-9, wall.Elapsed.TotalSeconds),
            stoppedByTime, loader.Unreadable);
    }
}
