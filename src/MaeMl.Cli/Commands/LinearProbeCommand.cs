using System.CommandLine;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml linprobe</c>: linear probing of a frozen MAE encoder on class folders (main_linprobe.py).</summary>
public static class LinearProbeCommand
{
    public static Command Create()
    {
        var train = new Option<string>("--train") { Description = "Training images in class folders (DIR/<class>/*.jpg)", Required = true };
        var val = new Option<string?>("--val") { Description = "Validation images in the same class folders" };
        var output = new Option<string>("--out") { Description = "Output folder (checkpoint-linprobe.maeml, metrics.jsonl, eval.json, curves)", DefaultValueFactory = _ => "runs/linprobe" };
        var init = new Option<string?>("--init") { Description = "Pretrained weights: .maeml, official .pth or safetensors" };
        var model = new Option<string?>("--model") { Description = "Preset: a randomly initialised encoder (baseline) or the heads for --init" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 90 };
        var warmup = new Option<double>("--warmup-epochs") { DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size") { Description = "Head batch (official 16384; lr = blr x batch / 256)", DefaultValueFactory = _ => 256 };
        var blr = new Option<double>("--blr") { DefaultValueFactory = _ => 0.1 };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (overrides --blr)" };
        var optimizer = new Option<LinearProbeOptimizer>("--optimizer") { Description = "Sgd (momentum 0.9, default) or Lars (official; give it the official absolute lr, --lr 6.4, at small batches)", DefaultValueFactory = _ => LinearProbeOptimizer.Sgd };
        var noCache = new Option<bool>("--augment") { Description = "Recompute features every epoch from RandomResizedCrop + flip views (official; one encoder pass per image per epoch) instead of caching eval-transform features once" };
        var globalPool = new Option<bool>("--global-pool") { Description = "Mean-pooled features + fc_norm instead of the cls token (official linprobe: cls token)" };
        var evalCrop = new Option<double>("--eval-crop-pct") { Description = "Center-crop fraction for cached and validation features (1 = none, for 32x32 data)", DefaultValueFactory = _ => 224.0 / 256.0 };
        var featureBatch = new Option<int>("--feature-batch-size") { DefaultValueFactory = _ => 256 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var limit = new Option<int?>("--limit-per-class") { Description = "Use at most this many training images per class" };
        var valLimit = new Option<int?>("--val-limit-per-class") { Description = "Use at most this many validation images per class" };
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = default)", DefaultValueFactory = _ => 0 };
        var command = new Command("linprobe", "Linear probe of a frozen MAE encoder: BatchNorm (no affine) + linear head (main_linprobe.py; SGD or LARS).")
        { train, val, output, init, model, epochs, warmup, batch, blr, lr, optimizer, noCache, globalPool, evalCrop, featureBatch, seed, limit, valLimit, threads };
        command.SetAction(r =>
        {
            var preset = r.GetValue(model);
            if (r.GetValue(init) is null && preset is null) throw new CliException("give --init WEIGHTS (or --model PRESET for a random-encoder baseline)");
            var o = new LinearProbeOptions
            {
                TrainDir = r.GetValue(train)!, ValDir = r.GetValue(val), OutputDir = r.GetValue(output)!, Init = r.GetValue(init),
                Model = preset is null ? null : CliParsing.Preset(preset), Epochs = r.GetValue(epochs), WarmupEpochs = r.GetValue(warmup),
                BatchSize = r.GetValue(batch), BaseLr = r.GetValue(blr), Lr = r.GetValue(lr), Optimizer = r.GetValue(optimizer),
                CacheFeatures = !r.GetValue(noCache), GlobalPool = r.GetValue(globalPool), EvalCropPct = r.GetValue(evalCrop),
                FeatureBatchSize = r.GetValue(featureBatch), Seed = r.GetValue(seed), LimitPerClass = r.GetValue(limit),
                ValLimitPerClass = r.GetValue(valLimit), Threads = r.GetValue(threads),
            };
            return ModelFileOptions.Run(() =>
            {
                var result = new LinearProbe(o).Run();
                Console.WriteLine($"done in {ConsoleProgress.Format(result.Elapsed)} (features {result.FeatureTime.TotalSeconds:F1} s, head {result.HeadTrainingTime.TotalSeconds:F1} s); " +
                                  $"train top-1 {result.TrainTop1:P2}; checkpoint {result.CheckpointPath}");
                if (result.Validation is { } v) Console.Write(v.Format());
                return 0;
            });
        });
        return command;
    }
}
