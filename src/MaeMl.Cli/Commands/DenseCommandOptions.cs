using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using MaeMl.Training;
using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;

namespace MaeMl.Cli.Commands;

/// <summary>Backbone and fine-tuning options shared by <c>segment-train</c> and <c>detect-train</c>.</summary>
public sealed class DenseCommandOptions
{
    public Option<string?> Backbone { get; } = new("--backbone") { Description = "MAE or encoder file (.maeml, .pth, .safetensors) giving the ViT architecture and, without --scratch, its weights (position table interpolated to --image-size)." };
    public Option<bool> Scratch { get; } = new("--scratch") { Description = "Random initialisation of the --backbone architecture (the baseline for the same budget)." };
    public Option<string?> Preset { get; } = new("--model") { Description = "MAE preset for a randomly initialised ViT when there is no --backbone, e.g. mae_vit_base_patch16." };
    public Option<int> ImageSize { get; } = new("--image-size") { Description = "Square input size (a multiple of the patch size).", DefaultValueFactory = _ => 64 };
    public Option<int> PyramidChannels { get; } = new("--pyramid-channels") { Description = "Channels of the feature pyramid and head (detectron2: 256).", DefaultValueFactory = _ => 64 };
    public Option<string> Scales { get; } = new("--scales") { Description = "Pyramid scales relative to the patch grid, comma-separated.", DefaultValueFactory = _ => "4,2,1,0.5" };
    public Option<int> Epochs { get; } = new("--epochs") { DefaultValueFactory = _ => 20 };
    public Option<int> BatchSize { get; } = new("--batch-size") { DefaultValueFactory = _ => 16 };
    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate of the head.", DefaultValueFactory = _ => 1e-3 };
    public Option<double> BackboneLrScale { get; } = new("--backbone-lr-scale") { Description = "ViT learning rate = lr x this (0 freezes it).", DefaultValueFactory = _ => 0.1 };
    public Option<string?> TimeLimit { get; } = new("--time-limit") { Description = "Stop training after this long (e.g. 4m)." };
    public Option<int> Threads { get; } = new("--threads") { Description = "Torch CPU threads (0 = default).", DefaultValueFactory = _ => 0 };
    public Option<int> Seed { get; } = new("--seed") { DefaultValueFactory = _ => 0 };
    public Option<int> Limit { get; } = new("--limit") { Description = "Use only the first N training images (0 = all).", DefaultValueFactory = _ => 0 };
    public Option<string?> Output { get; } = new("--output") { Description = "Where to save the trained model." };
    public Option<string?> Picture { get; } = new("--picture") { Description = "PNG of predictions on the first validation images." };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Backbone, Scratch, Preset, ImageSize, PyramidChannels, Scales, Epochs, BatchSize, Lr, BackboneLrScale, TimeLimit, Threads, Seed, Limit, Output, Picture })
            command.Options.Add(o);
    }

    public double[] ReadScales(ParseResult parse) =>
        parse.GetValue(Scales)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => double.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new CliException($"invalid scale '{s}' in --scales")).ToArray();

    public DenseTrainingOptions ReadTraining(ParseResult parse) => new()
    {
        Epochs = parse.GetValue(Epochs), BatchSize = parse.GetValue(BatchSize), Lr = parse.GetValue(Lr),
        BackboneLrScale = parse.GetValue(BackboneLrScale), Seed = parse.GetValue(Seed), TimeLimit = CliParsing.Duration(parse.GetValue(TimeLimit)),
    };

    /// <summary>Sets threads and seed; returns the encoder architecture at --image-size, the pretrained weights (or null) and a description.</summary>
    public (MaeConfig Encoder, Dictionary<string, torch.Tensor>? Weights, string Description) ReadBackbone(ParseResult parse)
    {
        if (parse.GetValue(Threads) > 0) torch.set_num_threads(parse.GetValue(Threads));
        torch.manual_seed(parse.GetValue(Seed));
        int size = parse.GetValue(ImageSize);
        var file = parse.GetValue(Backbone);
        var preset = parse.GetValue(Preset);
        if ((file is null) == (preset is null)) throw new CliException("give either --backbone FILE or --model PRESET");
        MaeConfig config;
        Dictionary<string, torch.Tensor>? weights = null;
        string description;
        if (file is not null)
        {
            using var mae = MaeModelFile.LoadMae(file, new MaeLoadOptions { AllowMissingDecoder = true });
            config = mae.Config;
            if (!parse.GetValue(Scratch))
                weights = mae.state_dict().Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            description = parse.GetValue(Scratch) ? $"random init with the architecture of {file}" : $"MAE encoder from {file}";
        }
        else
        {
            config = CliParsing.Preset(preset!);
            if (parse.GetValue(Scratch)) throw new CliException("--scratch goes with --backbone (a --model preset is always randomly initialised)");
            description = $"random init {preset}";
        }
        if (size % config.PatchSize != 0) throw new CliException($"--image-size {size} is not a multiple of the patch size {config.PatchSize}");
        config = config with { ImageSize = size, DropPath = 0 };
        return (config, weights, $"{description}: ViT {config.EmbedDim}x{config.Depth} ({config.NumHeads} heads), patch {config.PatchSize}, input {size}x{size} ({config.GridSize}x{config.GridSize} patches)");
    }

    /// <summary>Class names from a comma-separated list or a YAML file with a <c>names:</c> / <c>classes:</c> block of <c>id: name</c> lines.</summary>
    public static List<string> ClassNames(string? spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) return [];
        if (!File.Exists(spec)) return spec.Split(',', StringSplitOptions.TrimEntries).ToList();
        var names = new SortedDictionary<int, string>();
        bool inBlock = false;
        foreach (var line in File.ReadLines(spec))
        {
            if (Regex.IsMatch(line, @"^(names|classes)\s*:")) { inBlock = true; continue; }
            var m = Regex.Match(line, @"^\s+(\d+)\s*:\s*(.+?)\s*$");
            if (inBlock && m.Success) names[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)] = m.Groups[2].Value.Trim('\'', '"');
            else if (inBlock && line.Length > 0 && !char.IsWhiteSpace(line[0])) inBlock = false;
        }
        if (names.Count == 0) throw new CliException($"no 'names:' or 'classes:' block of 'id: name' lines in '{spec}'");
        return Enumerable.Range(0, names.Keys.Max() + 1).Select(i => names.GetValueOrDefault(i, i.ToString())).ToList();
    }
}
