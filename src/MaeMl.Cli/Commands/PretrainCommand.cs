using System.CommandLine;
using MaeMl.Data;
using MaeMl.Interop;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml pretrain</c>: MAE pretraining on a folder of images; defaults are <see cref="PretrainOptions"/>'s.</summary>
public static class PretrainCommand
{
    static readonly PretrainOptions Defaults = new() { DataDir = "", OutputDir = "" };

    public static Command Create()
    {
        var data = new Option<string>(Vocabulary.Data) { Description = "Folder of images (searched recursively; class subfolders are ignored).", Required = true };
        var output = new Option<string>(Vocabulary.Out) { Description = "Output folder for checkpoints, metrics.jsonl and loss-curve.png.", DefaultValueFactory = _ => "runs/pretrain" };
        var model = new Option<string?>(Vocabulary.Model)
        {
            Description = "Preset (see 'maeml info'); with --weights only its attention heads, mask ratio and loss settings are used.",
            DefaultValueFactory = _ => CliHelpers.PresetName(Defaults.Model),
        };
        var epochs = new Option<int>("--epochs") { Description = "Epochs of the schedule.", DefaultValueFactory = _ => Defaults.Epochs };
        var warmup = new Option<double>("--warmup-epochs") { Description = "Linear lr warmup before the cosine decay.", DefaultValueFactory = _ => Defaults.WarmupEpochs };
        var batch = new Option<int>("--batch-size") { Description = "Images per step.", DefaultValueFactory = _ => Defaults.BatchSize };
        var accum = new Option<int>("--accum-iter") { Description = "Gradient accumulation steps (effective batch = batch size x this).", DefaultValueFactory = _ => Defaults.AccumIter };
        var blr = new Option<double>("--blr") { Description = "Base lr: lr = blr x effective batch / 256.", DefaultValueFactory = _ => Defaults.BaseLr };
        var lr = new Option<double?>("--lr") { Description = "Absolute lr (overrides --blr)." };
        var minLr = new Option<double>("--min-lr") { Description = "Final lr of the cosine decay.", DefaultValueFactory = _ => Defaults.MinLr };
        var wd = new Option<double>("--weight-decay") { Description = "AdamW weight decay (not on norms and biases).", DefaultValueFactory = _ => Defaults.WeightDecay };
        var depth = new Option<int?>("--depth") { Description = "Override the preset's encoder depth." };
        var embedDim = new Option<int?>("--embed-dim") { Description = "Override the preset's encoder width." };
        var heads = new Option<int?>("--heads") { Description = "Override the preset's encoder attention heads." }.Legacy("--num-heads");
        var decDepth = new Option<int?>("--decoder-depth") { Description = "Override the preset's decoder depth." };
        var decDim = new Option<int?>("--decoder-embed-dim") { Description = "Override the preset's decoder width." };
        var decHeads = new Option<int?>("--decoder-heads") { Description = "Override the preset's decoder attention heads." }.Legacy("--decoder-num-heads");
        var patch = new Option<int?>("--patch-size") { Description = "Override the preset's patch size." };
        var maskRatio = new Option<double?>("--mask-ratio") { Description = "Fraction of patches removed (default: the preset's)." };
        var noNormPix = new Option<bool>("--no-norm-pix-loss") { Description = "Regress raw (ImageNet-normalised) pixels instead of per-patch normalised ones." };
        var seed = new Option<int>("--seed") { Description = "Seed of the initialisation, data order, crops and masks.", DefaultValueFactory = _ => Defaults.Seed };
        var limit = new Option<int?>("--limit") { Description = "Use at most this many images (evenly spaced)." };
        var weights = new Option<string?>(Vocabulary.Weights)
        {
            Description = "Continued pretraining: start a new run (fresh schedule and optimizer) from the weights of any MAE file (official .pth, " +
                          "Hugging Face ViTMAE safetensors, .maeml); its architecture is used, --model only supplies attention heads and loss settings. " +
                          "--resume continues a run instead.",
        }.Legacy("--init").ShippedNames();
        var imageSize = new Option<int?>("--image-size") { Description = "With --weights: train at this image size (position tables interpolated); default the file's." };
        var resume = new Option<string?>(Vocabulary.Resume) { Description = "Checkpoint of this run to continue exactly, or 'auto' (OUT/checkpoint-last.maeml if present)." };
        var timeLimit = new Option<string?>("--time-limit") { Description = "Stop cleanly (with a checkpoint) after this long, e.g. 60s, 20m. The lr schedule is kept, not shortened: --resume auto finishes it." };
        var ckptMinutes = new Option<double>("--checkpoint-minutes") { Description = "Mid-epoch checkpoint interval.", DefaultValueFactory = _ => Defaults.CheckpointMinutes };
        var saveEvery = new Option<int>("--save-every") { Description = "Also keep checkpoint-epochN every N epochs (0: only checkpoint-last).", DefaultValueFactory = _ => Defaults.SaveEveryEpochs };
        var precision = new Option<TrainingPrecision>("--precision") { Description = "Float32, BFloat16 (float32 master weights) or Auto: the faster of the two for this model here, measured once and cached.", DefaultValueFactory = _ => Defaults.Precision };
        var device = Vocabulary.DeviceOption();
        var threads = new Option<int>(Vocabulary.Threads) { Description = "Torch CPU threads; 0 = the library default (all cores).", DefaultValueFactory = _ => Defaults.Threads };
        var prefetch = new Option<int>("--prefetch") { Description = "Batches decoded ahead.", DefaultValueFactory = _ => Defaults.Prefetch };
        var maxMegapixels = new Option<double>("--max-image-megapixels") { Description = "Skip (and log) images whose header declares more pixels than this.", DefaultValueFactory = _ => ImageDecoder.MaxPixels / 1e6 };
        var command = new Command("pretrain", "MAE pretraining on a folder of images (main_pretrain.py).")
        { data, output, model, depth, embedDim, heads, decDepth, decDim, decHeads, patch, epochs, warmup, batch, accum, blr, lr, minLr, wd, maskRatio, noNormPix, seed, limit, resume, weights, imageSize, timeLimit, ckptMinutes, saveEvery, precision, threads, device, prefetch, maxMegapixels };
        command.SetAction(r =>
        {
            var name = r.GetValue(model);
            var config = name is null ? Defaults.Model : CliHelpers.Preset(name);
            ImageDecoder.MaxPixels = CliHelpers.MaxPixels(r.GetValue(maxMegapixels));
            if (r.GetValue(depth) is int d) config = config with { Depth = d };
            if (r.GetValue(embedDim) is int ed) config = config with { EmbedDim = ed };
            if (r.GetValue(heads) is int h) config = config with { NumHeads = h };
            if (r.GetValue(decDepth) is int dd) config = config with { DecoderDepth = dd };
            if (r.GetValue(decDim) is int ddim) config = config with { DecoderEmbedDim = ddim };
            if (r.GetValue(decHeads) is int dh) config = config with { DecoderNumHeads = dh };
            if (r.GetValue(patch) is int ps) config = config with { PatchSize = ps };
            if (r.GetValue(maskRatio) is double m) config = config with { MaskRatio = m };
            if (r.GetValue(noNormPix)) config = config with { NormPixLoss = false };
            if (r.GetValue(imageSize) is int && r.GetValue(weights) is null) throw new CliException($"--image-size goes with {Vocabulary.Weights} (for a new run the preset sets the size)");
            var initLoad = r.GetValue(weights) is null ? null : new MaeLoadOptions
            {
                ImageSize = r.GetValue(imageSize), Preset = r.GetResult(model) is { Implicit: false } ? name : null,
            };
            var options = Defaults with
            {
                DataDir = r.GetValue(data)!, OutputDir = r.GetValue(output)!, Model = config, Epochs = r.GetValue(epochs),
                WarmupEpochs = r.GetValue(warmup), BatchSize = r.GetValue(batch), AccumIter = r.GetValue(accum), BaseLr = r.GetValue(blr),
                Lr = r.GetValue(lr), MinLr = r.GetValue(minLr), WeightDecay = r.GetValue(wd), Seed = r.GetValue(seed), Limit = r.GetValue(limit),
                Resume = r.GetValue(resume), Init = r.GetValue(weights), InitLoad = initLoad, TimeLimit = CliHelpers.Duration(r.GetValue(timeLimit)), CheckpointMinutes = r.GetValue(ckptMinutes),
                SaveEveryEpochs = r.GetValue(saveEvery), Precision = r.GetValue(precision), Threads = r.GetValue(threads), Device = r.GetValue(device)!, Prefetch = r.GetValue(prefetch),
            };
            return CliHelpers.RunPretraining(options);
        });
        return command;
    }
}
