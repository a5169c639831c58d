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
    public Option<int> ImageSize { get; } = new("--image-size") { Description = "Square input size (a multiple of the patch size).", DefaultValueFactory = _ => 64 };
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
    public Option<string?> TimeLimit { get; } = new("--time-limit") { Description = "Stop training after this long (e.g. 4m); the schedule still assumes --epochs." };
    public Option<int> Threads { get; } = Vocabulary.ThreadsOption();
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the initialisation, data order and flips.", DefaultValueFactory = _ => Defaults.Seed };
    public Option<int> Limit { get; } = new("--limit") { Description = "Use only the first N training images (0 = all).", DefaultValueFactory = _ => 0 };
    public Option<string?> Out { get; } = new Option<string?>(Vocabulary.Out) { Description = "Model file to save the trained model to (read by the eval command's --weights)." }.Legacy("--output");
    public Option<string?> Picture { get; } = new("--picture") { Description = "PNG of predictions on the first validation images." };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Weights, Scratch, Model, ImageSize, PyramidChannels, Scales, Epochs, BatchSize, Lr, BackboneLrScale, TimeLimit, Threads, Seed, Limit, Out, Picture })
            command.Options.Add(o);
    }

    public double[] ReadScales(ParseResult parse) =>
        parse.GetValue(Scales)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => double.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new CliException($"invalid scale '{s}' in --scales")).ToArray();

    public DenseTrainingOptions ReadTraining(ParseResult parse) => Defaults with
    {
        Epochs = parse.GetValue(Epochs), BatchSize = parse.GetValue(BatchSize), Lr = parse.GetValue(Lr),
        BackboneLrScale = parse.GetValue(BackboneLrScale), Seed = parse.GetValue(Seed), TimeLimit = CliHelpers.Duration(parse.GetValue(TimeLimit)),
    };

    /// <summary>Sets threads and seed; returns the encoder architecture at --image-size, the pretrained weights (or null) and a description.</summary>
    public (MaeConfig Encoder, Dictionary<string, torch.Tensor>? Weights, string Description) ReadBackbone(ParseResult parse)
    {
        Vocabulary.ApplyThreads(parse.GetValue(Threads));
        torch.manual_seed(parse.GetValue(Seed));
        int size = parse.GetValue(ImageSize);
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
        if (size % config.PatchSize != 0) throw new CliException($"--image-size {size} is not a multiple of the patch size {config.PatchSize}");
        config = config with { ImageSize = size, DropPath = 0 };
        return (config, weights, $"{description}: ViT {config.EmbedDim}x{config.Depth} ({config.NumHeads} heads), patch {config.PatchSize}, input {size}x{size} ({config.GridSize}x{config.GridSize} patches)");
    }
}
