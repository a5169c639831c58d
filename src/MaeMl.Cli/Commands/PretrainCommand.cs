using System.CommandLine;
using MaeMl.Data;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml pretrain</c>: MAE pretraining on a folder of images.</summary>
public static class PretrainCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Folder of images (searched recursively; class subfolders are ignored)", Required = true };
        var output = new Option<string>("--out") { Description = "Output folder for checkpoints, metrics.jsonl and loss-curve.png", DefaultValueFactory = _ => "runs/pretrain" };
        var model = new Option<string>("--model") { Description = "Preset (see 'maeml info')", DefaultValueFactory = _ => "mae_vit_tiny_patch4_img32" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 400 };
        var warmup = new Option<double>("--warmup-epochs") { DefaultValueFactory = _ => 40 };
        var batch = new Option<int>("--batch-size") { Description = "Images per step", DefaultValueFactory = _ => 64 };
        var accum = new Option<int>("--accum-iter") { Description = "Gradient accumulation steps", DefaultValueFactory = _ => 1 };
        var blr = new Option<double>("--blr") { Description = "Base lr: lr = blr x effective batch / 256", DefaultValueFactory = _ => 1.5e-4 };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (overrides --blr)" };
        var minLr = new Option<double>("--min-lr") { DefaultValueFactory = _ => 0.0 };
        var wd = new Option<double>("--weight-decay") { DefaultValueFactory = _ => 0.05 };
        var depth = new Option<int?>("--depth") { Description = "Override the preset's encoder depth" };
        var embedDim = new Option<int?>("--embed-dim") { Description = "Override the preset's encoder width" };
        var heads = new Option<int?>("--num-heads") { Description = "Override the preset's encoder heads" };
        var decDepth = new Option<int?>("--decoder-depth") { Description = "Override the preset's decoder depth" };
        var decDim = new Option<int?>("--decoder-embed-dim") { Description = "Override the preset's decoder width" };
        var decHeads = new Option<int?>("--decoder-num-heads") { Description = "Override the preset's decoder heads" };
        var patch = new Option<int?>("--patch-size") { Description = "Override the preset's patch size" };
        var maskRatio = new Option<double?>("--mask-ratio") { Description = "Fraction of patches removed (default 0.75)" };
        var noNormPix = new Option<bool>("--no-norm-pix-loss") { Description = "Regress raw (ImageNet-normalised) pixels instead of per-patch normalised ones" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var limit = new Option<int?>("--limit") { Description = "Use at most this many images" };
        var init = new Option<string?>("--init") { Description = "Continued pretraining: start a new run (fresh schedule and optimizer) from any MAE file (official .pth, Hugging Face ViTMAE safetensors, .maeml); its architecture is used, --model only supplies attention heads" };
        var imageSize = new Option<int?>("--image-size") { Description = "With --init: train at this image size (position tables interpolated); default the file's" };
        var resume = new Option<string?>("--resume") { Description = "Checkpoint to continue from, or 'auto' (OUT/checkpoint-last.maeml if present)" };
        var timeLimit = new Option<string?>("--time-limit") { Description = "Stop cleanly (with a checkpoint) after this long, e.g. 60s, 20m. The lr schedule is kept, not shortened: --resume auto finishes it" };
        var ckptMinutes = new Option<double>("--checkpoint-minutes") { Description = "Mid-epoch checkpoint interval", DefaultValueFactory = _ => 5 };
        var saveEvery = new Option<int>("--save-every") { Description = "Also keep checkpoint-epochN every N epochs", DefaultValueFactory = _ => 0 };
        var precision = new Option<TrainingPrecision>("--precision") { Description = "Float32, BFloat16 (float32 master weights) or Auto: the faster of the two for this model here, measured once and cached", DefaultValueFactory = _ => Defaults.Precision };
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = default)", DefaultValueFactory = _ => 0 };
        var prefetch = new Option<int>("--prefetch") { Description = "Batches decoded ahead", DefaultValueFactory = _ => 6 };
        var maxMegapixels = new Option<double>("--max-image-megapixels") { Description = "Skip (and log) images whose header declares more pixels than this", DefaultValueFactory = _ => ImageDecoder.MaxPixels / 1e6 };
        var command = new Command("pretrain", "MAE pretraining on a folder of images (main_pretrain.py).")
        { data, output, model, depth, embedDim, heads, decDepth, decDim, decHeads, patch, epochs, warmup, batch, accum, blr, lr, minLr, wd, maskRatio, noNormPix, seed, limit, resume, init, imageSize, timeLimit, ckptMinutes, saveEvery, precision, threads, prefetch, maxMegapixels };
        command.SetAction(r =>
        {
            var config = CliParsing.Preset(r.GetValue(model)!);
            ImageDecoder.MaxPixels = CliParsing.MaxPixels(r.GetValue(maxMegapixels));
            if (r.GetValue(depth) is int d) config = config with { Depth = d };
            if (r.GetValue(embedDim) is int ed) config = config with { EmbedDim = ed };
            if (r.GetValue(heads) is int h) config = config with { NumHeads = h };
            if (r.GetValue(decDepth) is int dd) config = config with { DecoderDepth = dd };
            if (r.GetValue(decDim) is int ddim) config = config with { DecoderEmbedDim = ddim };
            if (r.GetValue(decHeads) is int dh) config = config with { DecoderNumHeads = dh };
            if (r.GetValue(patch) is int ps) config = config with { PatchSize = ps };
            if (r.GetValue(maskRatio) is double m) config = config with { MaskRatio = m };
            if (r.GetValue(noNormPix)) config = config with { NormPixLoss = false };
            if (r.GetValue(imageSize) is int && r.GetValue(init) is null) throw new CliException("--image-size goes with --init (for a new run the preset sets the size)");
            var initLoad = r.GetValue(init) is null ? null : new MaeMl.Interop.MaeLoadOptions
            {
                ImageSize = r.GetValue(imageSize), Preset = r.GetResult(model) is { Implicit: false } ? r.GetValue(model) : null,
            };
            var options = new PretrainOptions
            {
                DataDir = r.GetValue(data)!, OutputDir = r.GetValue(output)!, Model = config, Epochs = r.GetValue(epochs),
                WarmupEpochs = r.GetValue(warmup), BatchSize = r.GetValue(batch), AccumIter = r.GetValue(accum), BaseLr = r.GetValue(blr),
                Lr = r.GetValue(lr), MinLr = r.GetValue(minLr), WeightDecay = r.GetValue(wd), Seed = r.GetValue(seed), Limit = r.GetValue(limit),
                Resume = r.GetValue(resume), Init = r.GetValue(init), InitLoad = initLoad, TimeLimit = CliParsing.Duration(r.GetValue(timeLimit)), CheckpointMinutes = r.GetValue(ckptMinutes),
                SaveEveryEpochs = r.GetValue(saveEvery), Precision = r.GetValue(precision), Threads = r.GetValue(threads), Prefetch = r.GetValue(prefetch),
            };
            return Run(options);
        });
        return command;
    }

    static readonly PretrainOptions Defaults = new() { DataDir = "", OutputDir = "" };

    public static int Run(PretrainOptions options)
    {
        try
        {
            var result = new Pretrainer(options).Run();
            Console.WriteLine($"done: {result.EpochsDone} epoch(s), {result.OptimizerSteps} optimizer steps, last epoch loss {result.LastEpochLoss:F4}, " +
                              $"{result.ImagesPerSecond:F0} img/s overall; checkpoint {result.CheckpointPath}" +
                              (result.StoppedByTimeLimit ? $" (stopped by the time limit after {result.EpochsDone} of {options.Epochs} epochs, mid-schedule: --resume auto finishes the same schedule)" : ""));
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or NonFiniteLossException)
        {
            throw new CliException(e.Message);
        }
    }
}
