using System.CommandLine;
using MaeMl.Data;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml finetune</c>: fine-tune a ViT classifier from MAE weights (or from scratch) on class folders.</summary>
public static class FinetuneCommand
{
    public static Command Create()
    {
        var train = new Option<string>("--train") { Description = "Training images in class folders (DIR/<class>/*.jpg)", Required = true };
        var val = new Option<string?>("--val") { Description = "Validation images in the same class folders, evaluated after every epoch" };
        var output = new Option<string>("--out") { Description = "Output folder for checkpoints, metrics.jsonl, curves and eval.json", DefaultValueFactory = _ => "runs/finetune" };
        var init = new Option<string?>("--init") { Description = "Starting weights: .maeml pretraining/classifier checkpoint, official .pth or safetensors (omit to train from scratch)" };
        var model = new Option<string?>("--model") { Description = "Preset for training from scratch (or giving the heads of --init), e.g. mae_vit_tiny_patch4_img32" };
        var recipe = new Option<string>("--recipe") { Description = "Defaults: 'small' (32x32 images: batch 128, blr 1e-3, layer decay 0.75, no eval crop) or 'vit-b' (the paper's ViT-B: batch 64x16, blr 5e-4, layer decay 0.65)", DefaultValueFactory = _ => "small" };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (default 100)" };
        var warmup = new Option<double?>("--warmup-epochs") { Description = "Warmup epochs (default 5)" };
        var batch = new Option<int?>("--batch-size") { Description = "Images per step" };
        var accum = new Option<int?>("--accum-iter") { Description = "Gradient accumulation steps" };
        var blr = new Option<double?>("--blr") { Description = "Base lr: lr = blr x effective batch / 256" };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (overrides --blr)" };
        var minLr = new Option<double?>("--min-lr") { Description = "Final lr of the cosine (default 1e-6)" };
        var wd = new Option<double?>("--weight-decay") { Description = "AdamW weight decay (default 0.05)" };
        var layerDecay = new Option<double?>("--layer-decay") { Description = "Layer-wise lr decay (1 = off)" };
        var dropPath = new Option<double?>("--drop-path") { Description = "Stochastic depth (default 0.1)" };
        var clip = new Option<double?>("--clip-grad") { Description = "Clip the gradient norm (default: no clipping)" };
        var mixupAlpha = new Option<double?>("--mixup") { Description = "Mixup alpha (default 0.8; 0 = off)" };
        var cutmixAlpha = new Option<double?>("--cutmix") { Description = "CutMix alpha (default 1.0; 0 = off)" };
        var mixupProb = new Option<double?>("--mixup-prob") { Description = "Probability of mixing a batch (default 1)" };
        var switchProb = new Option<double?>("--mixup-switch-prob") { Description = "Probability of cutmix when both are on (default 0.5)" };
        var smoothing = new Option<double?>("--smoothing") { Description = "Label smoothing (default 0.1)" };
        var randAug = new Option<string?>("--randaug") { Description = "RandAugment as NxM (e.g. 2x9, the default) or 'none'" };
        var reprob = new Option<double?>("--reprob") { Description = "Random erasing probability (default 0.25)" };
        var minCrop = new Option<double?>("--min-crop-scale") { Description = "RandomResizedCrop minimum area (default 0.08)" };
        var evalCrop = new Option<double?>("--eval-crop-pct") { Description = "Evaluation center-crop fraction (0.875 ImageNet-style; 1 = none)" };
        var clsToken = new Option<bool>("--cls-token") { Description = "Classify the cls token instead of global average pooling + fc_norm" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var limit = new Option<int?>("--limit-per-class") { Description = "Use at most this many training images per class" };
        var valLimit = new Option<int?>("--val-limit-per-class") { Description = "Use at most this many validation images per class" };
        var resume = new Option<string?>("--resume") { Description = "Checkpoint to continue from, or 'auto' (OUT/checkpoint-last.maeml if present)" };
        var timeLimit = new Option<string?>("--time-limit") { Description = "Stop cleanly after this long (e.g. 20m); resume later" };
        var ckptMinutes = new Option<double>("--checkpoint-minutes") { Description = "Mid-epoch checkpoint interval", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = default)", DefaultValueFactory = _ => 0 };
        var prefetch = new Option<int>("--prefetch") { Description = "Batches decoded ahead", DefaultValueFactory = _ => 4 };
        var command = new Command("finetune", "Fine-tune a ViT classifier from MAE weights or from scratch (main_finetune.py: layer decay, mixup/cutmix, RandAugment, erasing, drop path).")
        {
            train, val, output, init, model, recipe, epochs, warmup, batch, accum, blr, lr, minLr, wd, layerDecay, dropPath, clip, mixupAlpha, cutmixAlpha,
            mixupProb, switchProb, smoothing, randAug, reprob, minCrop, evalCrop, clsToken, seed, limit, valLimit, resume, timeLimit, ckptMinutes, threads, prefetch,
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
            if (r.GetValue(init) is null && preset is null) throw new CliException("give --init WEIGHTS to fine-tune or --model PRESET to train from scratch");
            var mix = o.Mixup;
            mix = mix with
            {
                MixupAlpha = r.GetValue(mixupAlpha) ?? mix.MixupAlpha, CutmixAlpha = r.GetValue(cutmixAlpha) ?? mix.CutmixAlpha,
                Prob = r.GetValue(mixupProb) ?? mix.Prob, SwitchProb = r.GetValue(switchProb) ?? mix.SwitchProb, LabelSmoothing = r.GetValue(smoothing) ?? mix.LabelSmoothing,
            };
            o = o with
            {
                ValDir = r.GetValue(val), Init = r.GetValue(init), Model = preset is null ? null : CliParsing.Preset(preset),
                Epochs = r.GetValue(epochs) ?? o.Epochs, WarmupEpochs = r.GetValue(warmup) ?? o.WarmupEpochs, BatchSize = r.GetValue(batch) ?? o.BatchSize,
                AccumIter = r.GetValue(accum) ?? o.AccumIter, BaseLr = r.GetValue(blr) ?? o.BaseLr, Lr = r.GetValue(lr), MinLr = r.GetValue(minLr) ?? o.MinLr,
                WeightDecay = r.GetValue(wd) ?? o.WeightDecay, LayerDecay = r.GetValue(layerDecay) ?? o.LayerDecay, DropPath = r.GetValue(dropPath) ?? o.DropPath,
                ClipGrad = r.GetValue(clip), Mixup = mix, RandAugment = ParseRandAugment(r.GetValue(randAug), o.RandAugment),
                RandomErasingProb = r.GetValue(reprob) ?? o.RandomErasingProb, MinCropScale = r.GetValue(minCrop) ?? o.MinCropScale,
                EvalCropPct = r.GetValue(evalCrop) ?? o.EvalCropPct, GlobalPool = !r.GetValue(clsToken), Seed = r.GetValue(seed),
                LimitPerClass = r.GetValue(limit), ValLimitPerClass = r.GetValue(valLimit), Resume = r.GetValue(resume),
                TimeLimit = CliParsing.Duration(r.GetValue(timeLimit)), CheckpointMinutes = r.GetValue(ckptMinutes), Threads = r.GetValue(threads), Prefetch = r.GetValue(prefetch),
            };
            return ModelFileOptions.Run(() =>
            {
                try
                {
                    var result = new Finetuner(o).Run();
                    Console.WriteLine($"done: {result.EpochsDone} epoch(s), {result.OptimizerSteps} optimizer steps, last epoch loss {result.LastEpochLoss:F4}, " +
                                      $"{ConsoleProgress.Format(result.Elapsed)}; checkpoint {result.CheckpointPath}" +
                                      (result.StoppedByTimeLimit ? " (stopped by the time limit: continue with --resume auto)" : ""));
                    if (result.Validation is { } v) Console.Write(v.Format());
                    return 0;
                }
                catch (NonFiniteLossException e) { throw new CliException(e.Message); }
            });
        });
        return command;
    }

    /// <summary>"2x9" (ops x magnitude), "none", or null for <paramref name="fallback"/>.</summary>
    public static RandAugment? ParseRandAugment(string? text, RandAugment? fallback)
    {
        if (text is null) return fallback;
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase)) return null;
        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], out var n) && double.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var m) && n >= 0 && m >= 0)
            return new RandAugment(n, m);
        throw new CliException($"invalid --randaug '{text}' (use NxM such as 2x9, or none)");
    }
}
