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
/// <param name="CheckpointPath">The run's <see cref="Pretrainer.LastCheckpointName"/>.</param>
/// <param name="EpochsDone">Epochs completed, those before a resume included.</param>
/// <param name="OptimizerSteps">Optimizer steps taken, those before a resume included.</param>
/// <param name="LastEpochLoss">Mean loss of the last epoch completed in this run (NaN when none was).</param>
/// <param name="ImagesPerSecond">Images trained on in this run per second of its training loop.</param>
/// <param name="StoppedByTimeLimit">The run stopped at <see cref="PretrainOptions.TimeLimit"/> with a checkpoint, before the schedule's end.</param>
/// <param name="SkippedImages">Unreadable images, with the reason.</param>
public sealed record PretrainResult(string CheckpointPath, int EpochsDone, long OptimizerSteps, double LastEpochLoss,
    double ImagesPerSecond, bool StoppedByTimeLimit, IReadOnlyDictionary<string, string> SkippedImages);

/// <summary>
/// MAE pretraining as the official <c>main_pretrain.py</c> + <c>engine_pretrain.py</c>: AdamW(0.9, 0.95) with weight decay
/// on weights only, lr = blr x effective batch / 256, per-step warmup + half-cycle cosine, gradient accumulation,
/// seeded runs, atomic checkpoints with exact resume, metrics log, progress bar and a loss-curve PNG.
/// </summary>
public sealed class Pretrainer
{
    /// <summary>The run's checkpoint in the output folder (<c>checkpoint-last.maeml</c>), rewritten at every save.</summary>
    public const string LastCheckpointName = "checkpoint-last" + MaeCheckpoint.Extension;
    readonly PretrainOptions options;
    readonly ConsoleProgress progress;
    readonly Action<string> log;

    /// <summary>A run of <paramref name="options"/> (validated: throws <see cref="ArgumentException"/>); progress goes to
    /// <paramref name="progress"/> (default: a console bar), messages to <paramref name="log"/> (default: progress lines).</summary>
    public Pretrainer(PretrainOptions options, ConsoleProgress? progress = null, Action<string>? log = null)
    {
        this.options = options.Validate();
        this.progress = progress ?? new ConsoleProgress();
        this.log = log ?? this.progress.Line;
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

    /// <summary>
    /// Pretrains (or resumes, see <see cref="PretrainOptions.Resume"/>) to the end of the schedule or the time limit, holding the output
    /// folder's lock (<see cref="RunFolder.Lock"/>) and writing <c>run.json</c>, <c>metrics.jsonl</c>, <see cref="LastCheckpointName"/>
    /// (every epoch, every <see cref="PretrainOptions.CheckpointMinutes"/> and at the time limit), the every-N-epochs copies and
    /// <c>loss-curve.png</c>. Throws <see cref="NonFiniteLossException"/> when training diverges (the last good checkpoint is kept) and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires, at the next accumulation boundary with
    /// <see cref="LastCheckpointName"/> written first, so <c>Resume = "auto"</c> continues it.
    /// </summary>
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
        var device = TrainingDevice.Resolve(o.Device);
        model.to(device);   // before the optimizer takes the parameters
        var groups = ParameterGroups.AdamWGroups(model, o.PeakLr, o.WeightDecay);
        using var optimizer = new AdamW(groups, o.PeakLr, 0.9, 0.95);   // MaeMl's: no temporary Scalars, TorchSharp's state format
        var precision = PrecisionProbe.Resolve(o.Precision, o.Model, o.BatchSize, log, device: device);
        using var mixed = precision == TrainingPrecision.BFloat16 ? new BFloat16MasterWeights<MaskedAutoencoderViT>(model, () => new MaskedAutoencoderViT(model.Config)) : null;
        mixed?.FuseInto(optimizer);
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
        int stepsPerEpoch = loader.BatchesPerEpoch;
        using var metrics = new MetricsLog(Path.Combine(o.OutputDir, "metrics.jsonl"), resume is null ? null : (long)startEpoch * stepsPerEpoch + startStep);
        var loop = new TrainingLoop<ImageBatch>(loader, new TorchOptimizer(optimizer), schedule, null, o.Epochs, o.BatchSize, o.AccumIter, o.TimeLimit, o.CheckpointMinutes,
            metrics, progress, log, lastPath, lastGood, $"the {folder.Samples.Count} images under '{o.DataDir}'");
        log($"pretraining {folder.Samples.Count} images from {o.DataDir}: {stepsPerEpoch} steps/epoch, batch {o.BatchSize} x accum {o.AccumIter}, " +
            $"lr {o.PeakLr:E3} (blr {o.BaseLr:E2}), {precision}, torch threads {torch.get_num_threads()}");
        var run = loop.Run(new PretrainTask(o, model, mixed, optimizer, stepsPerEpoch), startEpoch, startStep, optimizerSteps, cancel);

        var curve = Path.Combine(o.OutputDir, "loss-curve.png");
        MetricsLog.PlotLoss(metrics.Path, curve, $"MAE pretraining loss ({o.Model.EmbedDim}x{o.Model.Depth}, {o.Model.ImageSize}px)");
        if (loader.Unreadable.Count > 0) log($"{loader.Unreadable.Count} unreadable image(s) were skipped (listed above)");
        return new PretrainResult(lastPath, run.EpochsDone, run.OptimizerSteps, run.LastEpochLoss, run.ImagesSeen / Math.Max(1e-9, run.Elapsed.TotalSeconds),
            run.StoppedByTimeLimit, loader.Unreadable);
    }

    /// <summary>MAE pretraining as a <see cref="TrainingTask{TBatch}"/>: the masked-reconstruction loss with per-step seeded masks, the
    /// bfloat16 working copy around forward/backward, <see cref="MaeCheckpoint"/>s and the every-N-epochs copies.</summary>
    sealed class PretrainTask(PretrainOptions o, MaskedAutoencoderViT model, BFloat16MasterWeights<MaskedAutoencoderViT>? mixed, AdamW optimizer, int stepsPerEpoch) : TrainingTask<ImageBatch>
    {
        readonly MaskedAutoencoderViT compute = mixed?.Work ?? model;
        readonly Device device = TrainingDevice.Of(mixed?.Work ?? model);   // the task is made after the model moved there

        public override Tensor Loss(ImageBatch batch, int epoch, int step)
        {
            var imgs = batch.ImagesTensor().On(device);
            using var gen = new Generator((ulong)Seeds.Mix(o.Seed, epoch, step, 0x4D41534B), torch.CPU);
            var noise = torch.rand(new long[] { batch.Count, o.Model.NumPatches }, generator: gen).On(device);   // drawn on the CPU: the same masks on any device
            return compute.Forward(imgs, noise).Loss;
        }

        public override void BeforeForward() => mixed?.PullWeights();
        public override void AfterBackward() => mixed?.PushGradients();
        public override string Advice => "Try a lower --blr, more warmup, or --precision float32.";

        public override void Save(string path, int epoch, int nextStep, long optimizerSteps) =>
            MaeCheckpoint.Save(path, model, new JsonObject
            {
                ["epoch"] = epoch, ["step_in_epoch"] = nextStep, ["optimizer_steps"] = optimizerSteps, ["seed"] = o.Seed,
                ["steps_per_epoch"] = stepsPerEpoch, ["rng"] = "data order, augmentation and masks derive from (seed, epoch, step)",
                ["options"] = JsonSerializer.SerializeToNode(o with { }),
            }, optimizer);

        public override void AfterEpochCheckpoint(int epoch, string lastPath)
        {
            if (o.SaveEveryEpochs > 0 && (epoch + 1) % o.SaveEveryEpochs == 0)
                RunFolder.Copy(lastPath, Path.Combine(o.OutputDir, $"checkpoint-epoch{epoch + 1}{MaeCheckpoint.Extension}"));
        }
    }
}
