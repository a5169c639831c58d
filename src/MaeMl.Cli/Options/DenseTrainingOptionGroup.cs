using System.CommandLine;
using System.Globalization;
using MaeMl.Detection;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;

namespace MaeMl.Cli;

/// <summary>Backbone and fine-tuning options shared by <c>segment-train</c> and <c>detect-train</c>; defaults are those of
/// <see cref="DenseTrainingOptions"/> and <see cref="DetectionConfig"/>.</summary>
public sealed class DenseTrainingOptionGroup
{
    static readonly DenseTrainingOptions Defaults = new();
    static readonly DetectionConfig Heads = new(new MaeConfig(), 1);

    public Option<string?> Weights { get; } = new Option<string?>(Vocabulary.Weights)
    {
        Description = "MAE or encoder weights file (.maeml, .pth, .safetensors) giving the ViT architecture and, without --scratch, its weights (position table interpolated to --image-size).",
    }.Legacy("--backbone").ShippedNames();
    public Option<bool> Scratch { get; } = new("--scratch") { Description = "Random initialisation of the --weights architecture (the baseline for the same budget)." };
    public Option<string?> Model { get; } = new(Vocabulary.Model) { Description = "Preset of a randomly initialised ViT when there is no --weights, e.g. mae_vit_base_patch16." };
    public Option<string> ImageSize { get; } = new("--image-size")
    {
        Description = "Input size: WxH (e.g. 160x120, the data's aspect ratio; segmentation only) or one number for a square input; each side a multiple of the patch size.",
        DefaultValueFactory = _ => "64",
    };
    public Option<int> PyramidChannels { get; } = new("--pyramid-channels") { Description = "Channels of the feature pyramid and head (detectron2: 256).", DefaultValueFactory = _ => Heads.PyramidChannels };
    public Option<string> Scales { get; } = new("--scales")
    {
        Description = "Pyramid scales relative to the patch grid, comma-separated (ViTDet: 4,2,1,0.5).",
        DefaultValueFactory = _ => string.Join(",", Heads.Scales.Select(s => s.ToString(CultureInfo.InvariantCulture))),
    };
    public Option<int> Epochs { get; } = new("--epochs") { Description = "Training epochs (the schedule's length).", DefaultValueFactory = _ => Defaults.Epochs };
    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Images per step.", DefaultValueFactory = _ => Defaults.BatchSize };
    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate of the head.", DefaultValueFactory = _ => Defaults.Lr };
    public Option<double> BackboneLrScale { get; } = new("--backbone-lr-scale") { Description = "ViT learning rate = lr x this (0 freezes it).", DefaultValueFactory = _ => Defaults.BackboneLrScale };
    public Option<double> MinScale { get; } = new("--min-scale") { Description = "Scale jitter: zoom into a random window of [this, 1] of the image per batch (1 = off; boxes and masks follow).", DefaultValueFactory = _ => Defaults.MinScale };
    public Option<double> ColourJitter { get; } = new("--colour-jitter") { Description = "Per-image brightness/contrast jitter strength (0 = off).", DefaultValueFactory = _ => Defaults.ColourJitter };
    public Option<double> LayerDecay { get; } = new("--layer-decay") { Description = "Layer-wise lr decay of the ViT, 1 = off (ViTDet: 0.7).", DefaultValueFactory = _ => Defaults.LayerDecay };
    public Option<double> DropPath { get; } = new("--drop-path") { Description = "Stochastic depth of the ViT's blocks, linear over depth (ViTDet: 0.1).", DefaultValueFactory = _ => 0.0 };
    public Option<string?> TimeLimit { get; } = new("--time-limit") { Description = "Stop training after this long (e.g. 4m); the schedule still assumes --epochs." };
    public Option<int> Threads { get; } = Vocabulary.ThreadsOption();
    public Option<string> Device { get; } = Vocabulary.DeviceOption();
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the initialisation, data order and flips.", DefaultValueFactory = _ => Defaults.Seed };
    public Option<int> Limit { get; } = new("--limit") { Description = "Use only the first N training images (0 = all).", DefaultValueFactory = _ => 0 };
    public Option<string?> Out { get; } = new Option<string?>(Vocabulary.Out)
    {
        Description = "Run folder: the trained model (model.maeml, read by the eval commands' --weights and export-onnx), checkpoint-last.maeml " +
                      "(the same with the optimizer state, for --resume), metrics.jsonl with per-epoch validation, loss-curve.png. " +
                      "A path with a file extension (det.maeml) saves only the model there, as earlier releases did.",
    }.Legacy("--output");
    public Option<string?> Resume { get; } = new(Vocabulary.Resume) { Description = "auto (continue the --out folder's checkpoint-last when there is one) or a checkpoint to continue exactly." };
    public Option<double> CheckpointMinutes { get; } = new("--checkpoint-minutes") { Description = "Minutes between mid-epoch checkpoints of the --out folder.", DefaultValueFactory = _ => Defaults.CheckpointMinutes };

    /// <summary>The file name of the trained model in a run folder.</summary>
    public const string ModelFileName = "model.maeml";

    /// <summary>The run folder of --out, or null when --out is absent or names a model file.</summary>
    public string? RunDir(ParseResult parse) => parse.GetValue(Out) is { } o && !IsModelFile(o) ? o : null;

    /// <summary>Where the trained model goes: --out itself when it names a file (has an extension), else DIR/model.maeml; null without --out.</summary>
    public string? ModelPath(ParseResult parse) => parse.GetValue(Out) is not { } o ? null : IsModelFile(o) ? o : Path.Combine(o, ModelFileName);

    static bool IsModelFile(string path) => Path.HasExtension(path) && !Directory.Exists(path);
    public Option<string?> Picture { get; } = new("--picture") { Description = "PNG of predictions on the first validation images." };
    /// <summary>ViTDet's backbone attention: --window-size, --global-blocks, --rel-pos.</summary>
    public BackboneAttentionOptions Attention { get; } = new();

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Weights, Scratch, Model, ImageSize, PyramidChannels, Scales, Epochs, BatchSize, Lr, BackboneLrScale, LayerDecay, DropPath, MinScale, ColourJitter, TimeLimit, Threads, Device, Seed, Limit, Out, Resume, CheckpointMinutes, Picture })
            command.Options.Add(o);
        Attention.AddTo(command);
    }

    public double[] ReadScales(ParseResult parse) =>
        parse.GetValue(Scales)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => double.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new CliException($"invalid scale '{s}' in --scales")).ToArray();

    public DenseTrainingOptions ReadTraining(ParseResult parse) => Defaults with
    {
        Epochs = parse.GetValue(Epochs), BatchSize = parse.GetValue(BatchSize), Lr = parse.GetValue(Lr),
        BackboneLrScale = parse.GetValue(BackboneLrScale), LayerDecay = parse.GetValue(LayerDecay), MinScale = parse.GetValue(MinScale), ColourJitter = parse.GetValue(ColourJitter), Seed = parse.GetValue(Seed), TimeLimit = CliHelpers.Duration(parse.GetValue(TimeLimit)),
        OutputDir = RunDir(parse), CheckpointMinutes = parse.GetValue(CheckpointMinutes), Device = parse.GetValue(Device)!,
        Resume = parse.GetValue(Resume) is { } r ? (RunDir(parse) is null ? throw new CliException($"{Vocabulary.Resume} needs {Vocabulary.Out} DIR (a run folder)") : r) : null,
    };

    /// <summary>The backbone attention of --window-size / --global-blocks / --rel-pos for <paramref name="encoder"/> (null: global).</summary>
    public BackboneAttention? ReadAttention(ParseResult parse, MaeConfig encoder) => Attention.Read(parse, encoder.Depth);

    /// <summary>Sets threads and seed; returns the encoder architecture at --image-size, the pretrained weights (or null) and a description.</summary>
    public (MaeConfig Encoder, Dictionary<string, torch.Tensor>? Weights, string Description) ReadBackbone(ParseResult parse)
    {
        Vocabulary.ApplyThreads(parse.GetValue(Threads));
        torch.manual_seed(parse.GetValue(Seed));
        var text = parse.GetValue(ImageSize)!;
        var file = parse.GetValue(Weights);
        var preset = parse.GetValue(Model);
        if ((file is null) == (preset is null)) throw new CliException($"give either {Vocabulary.Weights} FILE or {Vocabulary.Model} PRESET");
        MaeConfig config;
        Dictionary<string, torch.Tensor>? weights = null;
        string description;
        if (file is not null)
        {
            using var mae = CliHelpers.LoadMae(file, new MaeLoadOptions { AllowMissingDecoder = true });
            config = mae.Config;
            if (!parse.GetValue(Scratch))
                weights = mae.state_dict().Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            description = parse.GetValue(Scratch) ? $"random init with the architecture of {file}" : $"MAE encoder from {file}";
        }
        else
        {
            config = CliHelpers.Preset(preset!);
            if (parse.GetValue(Scratch)) throw new CliException($"--scratch goes with {Vocabulary.Weights} (a {Vocabulary.Model} preset is always randomly initialised)");
            description = $"random init {preset}";
        }
        var size = ParseImageSize(text, config.PatchSize);
        double dropPath = parse.GetValue(DropPath);
        if (dropPath is < 0 or >= 1) throw new CliException($"--drop-path must be in [0, 1), got {dropPath}");
        config = config.WithInputSize(size) with { DropPath = dropPath };
        return (config, weights, $"{description}: ViT {config.EmbedDim}x{config.Depth} ({config.NumHeads} heads), patch {config.PatchSize}, input {size} ({config.GridWidth}x{config.GridHeight} patches)");
    }

    /// <summary>--image-size as W x H: <c>160x120</c> (width x height, as ML.NET's ResizeImages(width, height)) or one number for a square;
    /// each side positive and a multiple of <paramref name="patch"/>. Throws a one-line <see cref="CliException"/> otherwise.</summary>
    public static InputSize ParseImageSize(string text, int patch)
    {
        var parts = text.Trim().Split('x', 'X');
        var sides = parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : (int?)null).ToArray();
        if (parts.Length > 2 || sides.Any(v => v is null))
            throw new CliException($"--image-size '{text}' is not WxH or one side (e.g. 160x120 or 64)");
        var size = sides.Length == 1 ? new InputSize(sides[0]!.Value, sides[0]!.Value) : new InputSize(sides[0]!.Value, sides[1]!.Value);
        if (size.Width <= 0 || size.Height <= 0) throw new CliException($"--image-size {text}: both sides must be positive");
        foreach (var (name, side) in new[] { ("width", size.Width), ("height", size.Height) })
            if (side % patch != 0) throw new CliException(size.IsSquare ? $"--image-size {text} is not a multiple of the patch size {patch}"
                : $"--image-size {text}: the {name} {side} is not a multiple of the patch size {patch}");
        return size;
    }
}
