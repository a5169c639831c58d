using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using MaeMl.Data;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml finetune</c>: fine-tune a ViT classifier from MAE weights (or from scratch) on class folders; the defaults
/// are those of the chosen recipe (<see cref="FinetuneOptions.SmallImages"/> or <see cref="FinetuneOptions.PaperVitBase"/>).</summary>
public static class FinetuneCommand
{
    static readonly FinetuneOptions Small = FinetuneOptions.SmallImages("", ""), VitB = FinetuneOptions.PaperVitBase("", "");

    /// <summary>"(default X)" or "(default X with --recipe small, Y with vit-b)", read from the two recipes.</summary>
    static string Default(Func<FinetuneOptions, object?> value)
    {
        static string Text(object? v) => v switch
        {
            null => "none", RandAugment ra => FormattableString.Invariant($"{ra.NumOps}x{ra.Magnitude}"),
            double d => Regex.Replace(d.ToString(CultureInfo.InvariantCulture).ToLowerInvariant(), @"e([+-])0*(\d)", "e$1$2"),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture), _ => v.ToString() ?? "",
        };
        string small = Text(value(Small)), vitb = Text(value(VitB));
        return small == vitb ? $"(default {small})" : $"(default {small} with --recipe small, {vitb} with vit-b)";
    }

    public static Command Create()
    {
        var train = new Option<string>(Vocabulary.Train) { Description = "Training images in class folders (DIR/<class>/*.jpg).", Required = true };
        var val = new Option<string?>(Vocabulary.Val) { Description = "Validation images in the same class folders, evaluated after every epoch." };
        var output = new Option<string>(Vocabulary.Out) { Description = "Output folder for checkpoints, metrics.jsonl, curves and eval.json.", DefaultValueFactory = _ => "runs/finetune" };
        var weights = new Option<string?>(Vocabulary.Weights) { Description = "Starting weights: .maeml pretraining/classifier checkpoint, official .pth or safetensors (omit to train from scratch with --model)." }.Legacy("--init").ShippedNames();
        var model = new Option<string?>(Vocabulary.Model) { Description = "Preset for training from scratch (or giving the heads of --weights), e.g. mae_vit_tiny_patch4_img32." };
        var recipe = new Option<string>("--recipe")
        {
            Description = "Defaults of the options below: 'small' (32x32 images such as CIFAR-10) or 'vit-b' (the paper's ViT-B/16 ImageNet recipe).",
            DefaultValueFactory = _ => "small",
        };
        var epochs = new Option<int?>("--epochs") { Description = $"Epochs of the schedule {Default(o => o.Epochs)}." };
        var warmup = new Option<double?>("--warmup-epochs") { Description = $"Linear lr warmup epochs {Default(o => o.WarmupEpochs)}." };
        var batch = new Option<int?>("--batch-size") { Description = $"Images per step {Default(o => o.BatchSize)}." };
        var accum = new Option<int?>("--accum-iter") { Description = $"Gradient accumulation steps {Default(o => o.AccumIter)}." };
        var blr = new Option<double?>("--blr") { Description = $"Base lr: lr = blr x effective batch / 256 {Default(o => o.BaseLr)}." };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (overrides --blr)." };
        var minLr = new Option<double?>("--min-lr") { Description = $"Final lr of the cosine {Default(o => o.MinLr)}." };
        var wd = new Option<double?>("--weight-decay") { Description = $"AdamW weight decay {Default(o => o.WeightDecay)}." };
        var layerDecay = new Option<double?>("--layer-decay") { Description = $"Layer-wise lr decay, 1 = off {Default(o => o.LayerDecay)}." };
        var dropPath = new Option<double?>("--drop-path") { Description = $"Stochastic depth {Default(o => o.DropPath)}." };
        var clip = new Option<double?>("--clip-grad") { Description = $"Clip the gradient norm {Default(o => o.ClipGrad)}." };
        var evalEvery = new Option<int?>("--eval-every") { Description = $"Validate after every N epochs and after the last {Default(o => o.EvalEvery)}." };
        var mixupAlpha = new Option<double?>("--mixup") { Description = $"Mixup alpha, 0 = off {Default(o => o.Mixup.MixupAlpha)}." };
        var cutmixAlpha = new Option<double?>("--cutmix") { Description = $"CutMix alpha, 0 = off {Default(o => o.Mixup.CutmixAlpha)}." };
        var mixupProb = new Option<double?>("--mixup-prob") { Description = $"Probability of mixing a batch {Default(o => o.Mixup.Prob)}." };
        var switchProb = new Option<double?>("--mixup-switch-prob") { Description = $"Probability of cutmix when both are on {Default(o => o.Mixup.SwitchProb)}." };
        var smoothing = new Option<double?>("--smoothing") { Description = $"Label smoothing {Default(o => o.Mixup.LabelSmoothing)}." };
        var randAug = new Option<string?>("--randaug") { Description = $"RandAugment as NxM (ops x magnitude) or 'none' {Default(o => o.RandAugment)}." };
        var reprob = new Option<double?>("--reprob") { Description = $"Random erasing probability {Default(o => o.RandomErasingProb)}." };
        var minCrop = new Option<double?>("--min-crop-scale") { Description = $"RandomResizedCrop minimum area {Default(o => o.MinCropScale)}." };
        var evalCrop = new Option<double?>("--eval-crop-pct") { Description = $"Evaluation center-crop fraction, 1 = none {Default(o => o.EvalCropPct)}." };
        var pooling = new Option<string>("--pooling")
        {
            Description = "Classifier input: mean (global average pooling + fc_norm, MAE's fine-tuning) or cls (the cls token).",
            DefaultValueFactory = _ => Small.GlobalPool ? "mean" : "cls",
        };
        var clsToken = new Option<bool>("--cls-token") { Description = "Same as --pooling cls." }.Retired();
        var seed = new Option<int>("--seed") { Description = "Seed of the head initialisation, data order, augmentation, mixup and drop path.", DefaultValueFactory = _ => Small.Seed };
        var limit = new Option<int?>("--limit-per-class") { Description = "Use at most this many training images per class (evenly spaced)." };
        var valLimit = new Option<int?>("--val-limit-per-class") { Description = "Use at most this many validation images per class (evenly spaced)." };
        var resume = new Option<string?>(Vocabulary.Resume) { Description = "Checkpoint of this run to continue exactly, or 'auto' (OUT/checkpoint-last.maeml if present)." };
        var timeLimit = new Option<string?>("--time-limit") { Description = "Stop cleanly after this long (e.g. 20m); --resume auto continues." };
        var ckptMinutes = new Option<double>("--checkpoint-minutes") { Description = "Mid-epoch checkpoint interval.", DefaultValueFactory = _ => Small.CheckpointMinutes };
        var device = Vocabulary.DeviceOption();
        var precision = new Option<TrainingPrecision>("--precision") { Description = "Float32 (default), BFloat16 (float32 master weights) or Auto: the faster of the two for this encoder here, measured once on its full-sequence step and cached.", DefaultValueFactory = _ => TrainingPrecision.Float32 };
        var threads = new Option<int>(Vocabulary.Threads) { Description = "Torch CPU threads; 0 = the library default (all cores).", DefaultValueFactory = _ => Small.Threads };
        var prefetch = new Option<int>("--prefetch") { Description = "Batches decoded ahead.", DefaultValueFactory = _ => Small.Prefetch };
        var command = new Command("finetune", "Fine-tune a ViT classifier from MAE weights or from scratch (main_finetune.py: layer decay, mixup/cutmix, RandAugment, erasing, drop path).")
        {
            train, val, output, weights, model, recipe, epochs, warmup, batch, accum, blr, lr, minLr, wd, layerDecay, dropPath, clip, evalEvery, mixupAlpha, cutmixAlpha,
            mixupProb, switchProb, smoothing, randAug, reprob, minCrop, evalCrop, pooling, clsToken, seed, limit, valLimit, resume, timeLimit, ckptMinutes, threads, device, precision, prefetch,
        };
        command.SetAction(r =>
        {
            var trainDir = r.GetValue(train)!;
            var outDir = r.GetValue(output)!;
            var o = r.GetValue(recipe)!.ToLowerInvariant() switch
            {
                "small" => FinetuneOptions.SmallImages(trainDir, outDir),
                "vit-b" => FinetuneOptions.PaperVitBase(trainDir, outDir),
                var other => throw new CliException($"unknown recipe '{other}' (use small or vit-b)"),
            };
            var preset = r.GetValue(model);
            if (r.GetValue(weights) is null && preset is null) throw new CliException($"give {Vocabulary.Weights} FILE to fine-tune or {Vocabulary.Model} PRESET to train from scratch");
            bool globalPool = r.GetValue(clsToken)
                ? (r.GetResult(pooling) is { Implicit: false } ? throw new CliException("give --pooling or the old --cls-token, not both") : false)
                : CliHelpers.GlobalPool(r.GetValue(pooling)!);
            var mix = o.Mixup;
            mix = mix with
            {
                MixupAlpha = r.GetValue(mixupAlpha) ?? mix.MixupAlpha, CutmixAlpha = r.GetValue(cutmixAlpha) ?? mix.CutmixAlpha,
                Prob = r.GetValue(mixupProb) ?? mix.Prob, SwitchProb = r.GetValue(switchProb) ?? mix.SwitchProb, LabelSmoothing = r.GetValue(smoothing) ?? mix.LabelSmoothing,
            };
            o = o with
            {
                ValDir = r.GetValue(val), Init = r.GetValue(weights), Model = preset is null ? null : CliHelpers.Preset(preset),
                Epochs = r.GetValue(epochs) ?? o.Epochs, WarmupEpochs = r.GetValue(warmup) ?? o.WarmupEpochs, BatchSize = r.GetValue(batch) ?? o.BatchSize,
                AccumIter = r.GetValue(accum) ?? o.AccumIter, BaseLr = r.GetValue(blr) ?? o.BaseLr, Lr = r.GetValue(lr), MinLr = r.GetValue(minLr) ?? o.MinLr,
                WeightDecay = r.GetValue(wd) ?? o.WeightDecay, LayerDecay = r.GetValue(layerDecay) ?? o.LayerDecay, DropPath = r.GetValue(dropPath) ?? o.DropPath,
                ClipGrad = r.GetValue(clip) ?? o.ClipGrad, EvalEvery = r.GetValue(evalEvery) ?? o.EvalEvery, Mixup = mix, RandAugment = ParseRandAugment(r.GetValue(randAug), o.RandAugment),
                RandomErasingProb = r.GetValue(reprob) ?? o.RandomErasingProb, MinCropScale = r.GetValue(minCrop) ?? o.MinCropScale,
                EvalCropPct = r.GetValue(evalCrop) ?? o.EvalCropPct, GlobalPool = globalPool, Seed = r.GetValue(seed),
                LimitPerClass = r.GetValue(limit), ValLimitPerClass = r.GetValue(valLimit), Resume = r.GetValue(resume),
                TimeLimit = CliHelpers.Duration(r.GetValue(timeLimit)), CheckpointMinutes = r.GetValue(ckptMinutes), Threads = r.GetValue(threads), Device = r.GetValue(device)!, Precision = r.GetValue(precision), Prefetch = r.GetValue(prefetch),
            };
            using var stop = new StopOnSignal();
            var result = new Finetuner(o).Run(stop.Token);
            Console.WriteLine($"done: {result.EpochsDone} epoch(s), {result.OptimizerSteps} optimizer steps, last epoch loss {result.LastEpochLoss:F4}, " +
                              $"{ConsoleProgress.Format(result.Elapsed)}; checkpoint {result.CheckpointPath}" +
                              (result.StoppedByTimeLimit ? $" (stopped by the time limit: continue with {Vocabulary.Resume} auto)" : ""));
            if (result.Validation is { } v) Console.Write(v.Format());
            return 0;
        });
        return command;
    }

    /// <summary>"2x9" (ops x magnitude), "none", or null for <paramref name="fallback"/>.</summary>
    static RandAugment? ParseRandAugment(string? text, RandAugment? fallback)
    {
        if (text is null) return fallback;
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase)) return null;
        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], out var n) && double.TryParse(parts[1], CultureInfo.InvariantCulture, out var m) && n >= 0 && m >= 0)
            return new RandAugment(n, m);
        throw new CliException($"invalid --randaug '{text}' (use NxM such as 2x9, or none)");
    }
}
