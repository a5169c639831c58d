using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// Dense fine-tuning (detection, segmentation) on <see cref="TrainingLoop{TBatch}"/>: shuffled row batches of an in-memory
/// dataset, AdamW with the ViT at a reduced lr (<see cref="ParameterGroups.DenseAdamWGroups"/>), per-step warmup + cosine, and,
/// with a run folder, metrics.jsonl, a loss curve, atomic checkpoints in the task's own model file (<see cref="DenseModelFile"/>,
/// with the optimizer state) and exact resume. The task supplies the loss of a batch, its file header and its evaluation.
/// </summary>
internal static class DenseTraining
{
    /// <summary>The run folder's checkpoint (a loadable model file of the task, with the optimizer state).</summary>
    public const string LastCheckpointName = "checkpoint-last" + MaeCheckpoint.Extension;

    /// <param name="model">Model in training; its parameters are optimised.</param>
    /// <param name="file">The task's model-file header (kind, configuration, classes) for the checkpoints.</param>
    /// <param name="numLayers">The ViT's layers for layer decay (<see cref="Model.VisionTransformer.NumLayers"/>).</param>
    /// <param name="count">Training rows.</param>
    /// <param name="batchLoss">The scalar loss of a batch of rows (its <see cref="RowBatch.Random"/> drives flips and jitter).</param>
    /// <param name="evaluate">End of each epoch: adds validation fields to the epoch's metrics line and returns text for the log; null for none.</param>
    /// <param name="o">The settings (validated here).</param>
    /// <param name="log">Epoch lines and notices, or null.</param>
    /// <param name="progress">A progress bar, or null.</param>
    /// <param name="cancel">Checked at every accumulation boundary: the run writes its checkpoint, then throws.</param>
    /// <param name="prepare">For a streamed set: decodes a batch's rows on background threads, ahead of training (<see cref="RowBatch.Prepared"/>).</param>
    public static DenseTrainingResult Run(nn.Module model, DenseModelHeader file, int numLayers, int count,
        Func<RowBatch, Tensor> batchLoss, Func<JsonObject, string>? evaluate, DenseTrainingOptions o, Action<string>? log,
        ConsoleProgress? progress, CancellationToken cancel, Func<long[], object>? prepare = null)
    {
        o.Validate();
        var say = log ?? (_ => { });
        torch.manual_seed(o.Seed);
        model.to(TrainingDevice.Resolve(o.Device));   // before the optimizer takes the parameters; batches follow (TrainingDevice.Of)
        var (groups, scales) = ParameterGroups.DenseAdamWGroups(model, VitParameterName, o.Lr, o.BackboneLrScale, o.WeightDecay, o.LayerDecay, numLayers);
        using var optimizer = new AdamW(groups, o.Lr);
        var schedule = new LearningRateSchedule(o.Lr, 0, o.WarmupEpochs, o.Epochs);
        var batches = new RowBatches(count, o.BatchSize, o.Seed, prepare: prepare);

        IDisposable? folderLock = null;
        MetricsLog? metrics = null;
        string? lastPath = null, lastGood = null;
        int startEpoch = 0, startStep = 0;
        long steps = 0;
        try
        {
            if (o.OutputDir is { } dir)
            {
                Directory.CreateDirectory(dir);
                folderLock = RunFolder.Lock(dir);
                RunFolder.SweepStaleTemporaries(dir, say);
                lastPath = Path.Combine(dir, LastCheckpointName);
                var resume = o.Resume == "auto" ? (File.Exists(lastPath) ? lastPath : null) : o.Resume;
                if (File.Exists(lastPath))
                    try { lastGood = $"{lastPath} (epoch {Position(DenseModelFile.ReadHeader(lastPath).Training ?? new JsonObject()).Epoch})"; }
                    catch (Exception e) when (e is InvalidDataException or IOException or InvalidOperationException) { }
                if (resume is not null)
                {
                    var header = DenseModelFile.LoadInto(resume, file.Kind, model, optimizer);
                    if (!header.ClassNames.SequenceEqual(file.ClassNames))
                        throw new InvalidDataException($"Checkpoint '{resume}' was trained on classes [{string.Join(", ", header.ClassNames)}], the data has [{string.Join(", ", file.ClassNames)}]");
                    if (!header.HasOptimizer) say($"note: '{resume}' holds no optimizer state (a finished model): the AdamW moments restart from zero");
                    (startEpoch, startStep, steps) = Position(header.Training ?? new JsonObject());
                    if (header.Training?["seed"]?.GetValue<int>() is int seed && seed != o.Seed)
                        say($"warning: resuming a run seeded {seed} with seed {o.Seed}: data order and flips will differ");
                    say($"resumed from {resume}: epoch {startEpoch}, step {startStep}, optimizer step {steps}");
                }
                RunFolder.WriteText(Path.Combine(dir, "run.json"), JsonSerializer.Serialize(o with { }, new JsonSerializerOptions { WriteIndented = true }));
                metrics = new MetricsLog(Path.Combine(dir, "metrics.jsonl"), resume is null ? null : (long)startEpoch * batches.BatchesPerEpoch + startStep);
            }
            var loop = new TrainingLoop<RowBatch>(batches, new TorchOptimizer(optimizer), schedule, scales, o.Epochs, batches.BatchSize, 1, o.TimeLimit,
                o.CheckpointMinutes, metrics, progress, say, lastPath, lastGood, $"the {count} training images");
            model.train();
            var task = new DenseTask(model, file, optimizer, batchLoss, evaluate, o, batches.BatchesPerEpoch);
            var run = loop.Run(task, startEpoch, startStep, steps, cancel);
            if (metrics is not null)
                MetricsLog.PlotLoss(metrics.Path, Path.Combine(o.OutputDir!, "loss-curve.png"), $"{file.Kind} fine-tuning loss");
            return new DenseTrainingResult(run.EpochsDone, run.OptimizerSteps, run.LastEpochLoss, run.Elapsed.TotalSeconds, run.StoppedByTimeLimit, lastPath);
        }
        finally
        {
            metrics?.Dispose();
            folderLock?.Dispose();
        }
    }

    /// <summary>The ViT's own name of a dense model's parameter (<c>backbone.net.blocks.0...</c> under a feature pyramid, <c>backbone.blocks.0...</c>
    /// without one), or null for the pyramid and the head.</summary>
    public static string? VitParameterName(string name) =>
        name.StartsWith("backbone.net.", StringComparison.Ordinal) ? name["backbone.net.".Length..]
        : name.StartsWith("backbone.", StringComparison.Ordinal) && !name.StartsWith("backbone.simfp_", StringComparison.Ordinal) ? name["backbone.".Length..]
        : null;

    static (int Epoch, int Step, long Steps) Position(JsonObject t) =>
        (t["epoch"]?.GetValue<int>() ?? 0, t["step_in_epoch"]?.GetValue<int>() ?? 0, t["optimizer_steps"]?.GetValue<long>() ?? 0);

    sealed class DenseTask(nn.Module model, DenseModelHeader file, AdamW optimizer, Func<RowBatch, Tensor> batchLoss, Func<JsonObject, string>? evaluate,
        DenseTrainingOptions o, int stepsPerEpoch) : TrainingTask<RowBatch>
    {
        public override Tensor Loss(RowBatch batch, int epoch, int step)
        {
            torch.manual_seed(Seeds.Mix(o.Seed, epoch, step, 0xD4));   // drop path: a function of (seed, epoch, step), so a resume is exact
            return batchLoss(batch);
        }

        public override string EndOfEpoch(int epoch, JsonObject entry)
        {
            if (evaluate is null) return "";
            var text = evaluate(entry);
            model.train();
            return text;
        }

        public override string Advice => "Try a lower --lr or --backbone-lr-scale, or more warmup.";

        public override void Save(string path, int epoch, int nextStep, long optimizerSteps) =>
            DenseModelFile.Write(path, file, model, new JsonObject
            {
                ["epoch"] = epoch, ["step_in_epoch"] = nextStep, ["optimizer_steps"] = optimizerSteps, ["seed"] = o.Seed,
                ["steps_per_epoch"] = stepsPerEpoch, ["rng"] = "data order and flips derive from (seed, epoch, step)",
                ["options"] = JsonSerializer.SerializeToNode(o with { }),
            }, optimizer);
    }
}
