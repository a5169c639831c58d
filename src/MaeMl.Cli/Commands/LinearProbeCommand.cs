using System.CommandLine;
using MaeMl.Onnx;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary>
/// <c>maeml linprobe</c>: linear probing of a frozen MAE encoder on class folders. <c>--trainer torch</c> (default) is
/// <c>main_linprobe.py</c>'s BatchNorm + linear head in TorchSharp (<see cref="LinearProbe"/>, defaults from
/// <see cref="LinearProbeOptions"/>); <c>--trainer mlnet</c> / <c>mlnet-sdca</c> fit an ML.NET maximum-entropy classifier on the
/// features of the exported ONNX encoder (<see cref="MlNetLinearProbe"/>). The hidden <c>linear-eval</c> command of earlier
/// releases is this command with <c>--trainer mlnet</c>.
/// </summary>
public static class LinearProbeCommand
{
    static readonly LinearProbeOptions Defaults = new() { TrainDir = "", OutputDir = "" };
    static readonly string[] Trainers = ["torch", "mlnet", "mlnet-sdca"];

    public static Command Create() => Create("linprobe", trainerDefault: "torch", trainLimitDefault: null);

    /// <summary><c>linear-eval</c> of earlier releases, hidden: <c>linprobe --trainer mlnet</c> with its old 10,000-image training subset.</summary>
    public static Command CreateLinearEvalAlias()
    {
        var command = Create("linear-eval", trainerDefault: "mlnet", trainLimitDefault: 10000);
        command.Hidden = true;
        return command;
    }

    static Command Create(string name, string trainerDefault, int? trainLimitDefault)
    {
        var train = new Option<string>(Vocabulary.Train) { Description = "Training images in class folders (DIR/<class>/*.jpg).", Required = true };
        var val = new Option<string?>(Vocabulary.Val) { Description = "Validation images in the same class folders." }.Legacy("--test");
        var output = new Option<string>(Vocabulary.Out) { Description = "Output folder of --trainer torch (checkpoint-linprobe.maeml, metrics.jsonl, eval.json, curves).", DefaultValueFactory = _ => "runs/linprobe" };
        var weights = new Option<string?>(Vocabulary.Weights) { Description = "Pretrained weights: .maeml, official .pth or safetensors (omit for a random-encoder baseline with --model)." }.Legacy("--init", "--checkpoint").ShippedNames();
        var model = new Option<string?>(Vocabulary.Model) { Description = "Preset: a randomly initialised encoder (baseline), or the heads of --weights." };
        var trainer = new Option<string>("--trainer")
        {
            Description = "torch: BatchNorm + linear head trained with SGD or LARS in TorchSharp (main_linprobe.py); mlnet: ML.NET LbfgsMaximumEntropy " +
                          "on features of the exported ONNX encoder; mlnet-sdca: the same with SdcaMaximumEntropy.",
            DefaultValueFactory = _ => trainerDefault,
        };
        var featurizer = new Option<string>("--featurizer")
        {
            Description = "With the mlnet trainers: mlnet (LoadImages + ApplyMaeEncoder pipeline) or batched (MaeEncoder over ONNX Runtime, same model, faster).",
            DefaultValueFactory = _ => "mlnet",
        };
        var pooling = new Option<string>("--pooling")
        {
            Description = "Features: cls (the cls token after the encoder's norm, main_linprobe.py) or mean (mean of the patch tokens; torch adds a fresh fc_norm).",
            DefaultValueFactory = _ => Defaults.GlobalPool ? "mean" : "cls",
        };
        var globalPool = new Option<bool>("--global-pool") { Description = "Same as --pooling mean." }.Retired();
        var epochs = new Option<int>("--epochs") { Description = "Epochs of the head's schedule (torch).", DefaultValueFactory = _ => Defaults.Epochs };
        var warmup = new Option<double>("--warmup-epochs") { Description = "Linear lr warmup epochs (torch).", DefaultValueFactory = _ => Defaults.WarmupEpochs };
        var batch = new Option<int>("--batch-size") { Description = "Head batch (torch; official 16384; lr = blr x batch / 256).", DefaultValueFactory = _ => Defaults.BatchSize };
        var blr = new Option<double>("--blr") { Description = "Base lr: lr = blr x batch / 256 (torch).", DefaultValueFactory = _ => Defaults.BaseLr };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (torch; overrides --blr)." };
        var optimizer = new Option<LinearProbeOptimizer>("--optimizer") { Description = "Sgd (momentum 0.9) or Lars (official; give it the official absolute lr, --lr 6.4, at small batches) (torch).", DefaultValueFactory = _ => Defaults.Optimizer };
        var augment = new Option<bool>("--augment") { Description = "Recompute features every epoch from RandomResizedCrop + flip views (official; one encoder pass per image per epoch) instead of caching eval-transform features once (torch)." };
        var evalCrop = new Option<double>("--eval-crop-pct") { Description = "Center-crop fraction for cached and validation features, 1 = none for 32x32 data (torch).", DefaultValueFactory = _ => Defaults.EvalCropPct };
        var featureBatch = new Option<int>("--feature-batch-size") { Description = "Images per encoder forward pass when computing features.", DefaultValueFactory = _ => Defaults.FeatureBatchSize };
        var seed = new Option<int>("--seed") { Description = "Seed of the random encoder (--model), the head and the data order.", DefaultValueFactory = _ => Defaults.Seed };
        var limit = new Option<int?>("--limit-per-class") { Description = "Use at most this many training images per class (evenly spaced)." };
        var valLimit = new Option<int?>("--val-limit-per-class") { Description = "Use at most this many validation images per class (evenly spaced)." };
        var threads = new Option<int>(Vocabulary.Threads) { Description = "Torch CPU threads, and ONNX Runtime intra-op threads of --featurizer batched; 0 = the library default (all cores).", DefaultValueFactory = _ => Defaults.Threads };
        var device = Vocabulary.DeviceOption();
        var trainLimit = new Option<int?>("--train-limit") { Description = "Seeded random subset of the training images (mlnet trainers; use --limit-per-class).", }.Retired();
        if (trainLimitDefault is int legacyLimit) trainLimit.DefaultValueFactory = _ => legacyLimit;
        var valRandomLimit = new Option<int?>("--test-limit") { Description = "Seeded random subset of the validation images (mlnet trainers; use --val-limit-per-class)." }.Retired();
        Option[] torchOnly = [output, epochs, warmup, batch, blr, lr, optimizer, augment, evalCrop, device];
        Option[] mlnetOnly = [featurizer, trainLimit, valRandomLimit];
        var command = new Command(name, "Linear probe of a frozen MAE encoder: BatchNorm (no affine) + linear head (main_linprobe.py; SGD or LARS), " +
                                        "or with --trainer mlnet an ML.NET maximum-entropy classifier on the exported ONNX encoder's features.")
        {
            train, val, output, weights, model, trainer, featurizer, pooling, globalPool, epochs, warmup, batch, blr, lr, optimizer, augment, evalCrop,
            featureBatch, seed, limit, valLimit, threads, device, trainLimit, valRandomLimit,
        };
        command.SetAction(r =>
        {
            var kind = r.GetValue(trainer)!.ToLowerInvariant() switch
            {
                "lbfgs" => "mlnet", "sdca" => "mlnet-sdca",   // linear-eval's names
                var t when Trainers.Contains(t) => t,
                var t => throw new CliException($"unknown trainer '{t}' (use {string.Join(", ", Trainers)})"),
            };
            var preset = r.GetValue(model);
            if (r.GetValue(weights) is null && preset is null) throw new CliException($"give {Vocabulary.Weights} FILE (or {Vocabulary.Model} PRESET for a random-encoder baseline)");
            bool meanPool = r.GetValue(globalPool)
                ? (r.GetResult(pooling) is { Implicit: false } ? throw new CliException("give --pooling or the old --global-pool, not both") : true)
                : CliHelpers.GlobalPool(r.GetValue(pooling)!);
            bool Given(Option o) => r.GetResult(o) is { Implicit: false };
            var misplaced = (kind == "torch" ? mlnetOnly : torchOnly).Where(Given).Select(o => o.Name).ToList();
            if (misplaced.Count > 0)
                throw new CliException($"{string.Join(", ", misplaced)} {(misplaced.Count == 1 ? "applies" : "apply")} to --trainer {(kind == "torch" ? "mlnet" : "torch")} only" +
                                       (kind != "torch" && misplaced.Contains("--batch-size") ? " (the featurizer's batch is --feature-batch-size)" : ""));
            if (kind == "torch")
            {
                var o = Defaults with
                {
                    TrainDir = r.GetValue(train)!, ValDir = r.GetValue(val), OutputDir = r.GetValue(output)!, Init = r.GetValue(weights),
                    Model = preset is null ? null : CliHelpers.Preset(preset), Epochs = r.GetValue(epochs), WarmupEpochs = r.GetValue(warmup),
                    BatchSize = r.GetValue(batch), BaseLr = r.GetValue(blr), Lr = r.GetValue(lr), Optimizer = r.GetValue(optimizer),
                    CacheFeatures = !r.GetValue(augment), GlobalPool = meanPool, EvalCropPct = r.GetValue(evalCrop),
                    FeatureBatchSize = r.GetValue(featureBatch), Seed = r.GetValue(seed), LimitPerClass = r.GetValue(limit),
                    ValLimitPerClass = r.GetValue(valLimit), Threads = r.GetValue(threads), Device = r.GetValue(device)!,
                };
                using var stop = new StopOnSignal();
                var result = new LinearProbe(o).Run(stop.Token);
                Console.WriteLine($"done in {ConsoleProgress.Format(result.Elapsed)} (features {result.FeatureTime.TotalSeconds:F1} s, head {result.HeadTrainingTime.TotalSeconds:F1} s); " +
                                  $"train top-1 {result.TrainTop1:P2}; checkpoint {result.CheckpointPath}");
                if (result.Validation is { } v) Console.Write(v.Format());
                return 0;
            }
            if (Given(trainLimit) && r.GetValue(limit) is not null || Given(valRandomLimit) && r.GetValue(valLimit) is not null)
                throw new CliException("give --limit-per-class / --val-limit-per-class or the old --train-limit / --test-limit, not both");
            return RunMlNet(kind, r.GetValue(featurizer)!.ToLowerInvariant(), meanPool ? EncoderPooling.Mean : EncoderPooling.Cls,
                r.GetValue(train)!, r.GetValue(val), r.GetValue(limit), r.GetValue(valLimit), r.GetValue(trainLimit), r.GetValue(valRandomLimit),
                r.GetValue(weights), preset, r.GetValue(seed), r.GetValue(featureBatch), r.GetValue(threads));
        });
        return command;
    }

    static int RunMlNet(string trainer, string featurizer, EncoderPooling pooling, string trainDir, string? valDir, int? perClass, int? valPerClass,
        int? trainRandom, int? valRandom, string? weights, string? preset, int seed, int batchSize, int threads)
    {
        if (featurizer is not ("mlnet" or "batched")) throw new CliException($"unknown featurizer '{featurizer}' (use mlnet or batched)");
        if (valRandom is not null && valDir is null) throw new CliException($"--test-limit needs {Vocabulary.Val}");
        // the old random subsets (--train-limit / --test-limit) only when asked for or defaulted and no per-class limit is given
        var trainFiles = trainRandom is int n && perClass is null ? CliHelpers.ListClassFolders(trainDir, n, seed: 0) : CliHelpers.ListClassFoldersPerClass(trainDir, perClass);
        var valFiles = valDir is null ? null
            : valRandom is int m && valPerClass is null ? CliHelpers.ListClassFolders(valDir, m, seed: 0) : CliHelpers.ListClassFoldersPerClass(valDir, valPerClass);
        Vocabulary.ApplyThreads(threads);
        var (model, description) = CliHelpers.LoadEncoder(weights, preset, seed);
        var onnx = Path.Combine(Path.GetTempPath(), $"maeml-linprobe-{Environment.ProcessId}.onnx");
        using (model) VitEncoderOnnxExporter.Export(model, onnx, new VitEncoderOnnxOptions { Poolings = [pooling] });
        Console.WriteLine(description);
        Console.WriteLine($"train {trainFiles.Count} images{(valFiles is null ? "" : $", val {valFiles.Count} images")}, pooling {pooling}, featurizer {featurizer}, trainer {trainer}");
        try { MlNetLinearProbe.Run(trainFiles, valFiles, onnx, pooling, trainer, featurizer, batchSize, threads); }
        finally { File.Delete(onnx); }
        return 0;
    }
}
