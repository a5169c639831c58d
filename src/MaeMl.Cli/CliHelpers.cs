using System.Globalization;
using System.Text.RegularExpressions;
using MaeMl.Data;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Training;
using TorchSharp;

namespace MaeMl.Cli;

/// <summary>What several commands share: parsing option values, listing images, opening model files, running a pretraining.
/// Commands call these (and <see cref="Reports"/>), never each other.</summary>
public static class CliHelpers
{
    /// <summary>"90", "90s", "15m", "2h", "1:30:00" -> TimeSpan.</summary>
    public static TimeSpan? Duration(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim();
        double Number(string s) => double.TryParse(s, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
            : throw new CliException($"invalid duration '{text}' (use e.g. 90s, 15m, 2h)");
        if (text.EndsWith('h')) return TimeSpan.FromHours(Number(text[..^1]));
        if (text.EndsWith('m')) return TimeSpan.FromMinutes(Number(text[..^1]));
        if (text.EndsWith('s')) return TimeSpan.FromSeconds(Number(text[..^1]));
        if (text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var ts)) return ts;
        return TimeSpan.FromSeconds(Number(text));
    }

    /// <summary>--max-image-megapixels as a pixel count.</summary>
    public static long MaxPixels(double megapixels) =>
        megapixels > 0 && megapixels <= 1e6 ? (long)(megapixels * 1e6) : throw new CliException($"--max-image-megapixels must be in (0, 1000000], got {megapixels}");

    /// <summary>A preset by name, with a message listing the known ones.</summary>
    public static MaeConfig Preset(string name)
    {
        try { return MaePresets.Get(name); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>The preset name of <paramref name="config"/> (a library default), or null when no preset is that configuration.</summary>
    public static string? PresetName(MaeConfig config) => MaePresets.All.FirstOrDefault(p => p.Value() == config).Key;

    /// <summary>"cls,mean", "all" -> poolings.</summary>
    public static EncoderPooling[] Poolings(string value)
    {
        if (value.Equals("all", StringComparison.OrdinalIgnoreCase)) return Enum.GetValues<EncoderPooling>();
        return value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => Enum.TryParse<EncoderPooling>(v, ignoreCase: true, out var p) ? p : throw new CliException($"unknown pooling '{v}' (use cls, mean, tokens or all)"))
            .Distinct().ToArray();
    }

    public static EncoderPooling Pooling(string value) =>
        Enum.TryParse<EncoderPooling>(value, ignoreCase: true, out var p) ? p : throw new CliException($"unknown pooling '{value}' (use cls, mean or tokens)");

    /// <summary>"mean" (global average pooling + fc_norm) or "cls" (the cls token) -> GlobalPool of the classifier options.</summary>
    public static bool GlobalPool(string value) => value.ToLowerInvariant() switch
    {
        "mean" => true, "cls" => false,
        _ => throw new CliException($"unknown pooling '{value}' (use cls or mean)"),
    };

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
        return Enumerable.Range(0, names.Keys.Max() + 1).Select(i => names.GetValueOrDefault(i, i.ToString(CultureInfo.InvariantCulture))).ToList();
    }

    static readonly HashSet<string> ListedExtensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };

    /// <summary>Images in class folders (<c>DIR/class/*.jpg|png|...</c>) as (path, label) pairs in a fixed order; with
    /// <paramref name="limit"/> &gt; 0 a seeded random subset of that size.</summary>
    public static List<(string Path, string Label)> ListClassFolders(string dir, int limit = 0, int seed = 0)
    {
        if (!Directory.Exists(dir)) throw new CliException($"image folder '{dir}' does not exist");
        var items = Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Where(f => ListedExtensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal)
                .Select(f => (Path: f, Label: Path.GetFileName(d))))
            .ToList();
        if (items.Count == 0) throw new CliException($"no images in class folders under '{dir}' (expected DIR/<class>/<image>.jpg)");
        if (limit > 0 && limit < items.Count)
        {
            var rng = new Random(seed);
            items = items.OrderBy(_ => rng.Next()).Take(limit).ToList();
        }
        return items;
    }

    /// <summary>Images in class folders as the training commands read them (<see cref="ImageFolder.Labelled"/>: at most
    /// <paramref name="limitPerClass"/> a class, evenly spaced in file order), as (path, class name) pairs.</summary>
    public static List<(string Path, string Label)> ListClassFoldersPerClass(string dir, int? limitPerClass)
    {
        var folder = ImageFolder.Labelled(dir, limitPerClass);
        return folder.Samples.Select(s => (s.Path, folder.Classes[s.Label])).ToList();
    }

    /// <summary>Files as given; folders contribute up to <paramref name="perFolder"/> images spread over the folder.</summary>
    public static List<string> ExpandImages(IEnumerable<string> items, int perFolder)
    {
        var result = new List<string>();
        foreach (var item in items)
        {
            if (Directory.Exists(item))
            {
                var all = ImageFolder.Unlabelled(item).Samples;
                int take = Math.Min(perFolder, all.Count);
                result.AddRange(Enumerable.Range(0, take).Select(i => all[(int)((long)i * all.Count / take)].Path));
            }
            else if (File.Exists(item)) result.Add(item);
            else throw new CliException($"image or folder '{item}' does not exist");
        }
        if (result.Count == 0) throw new CliException("no images given");
        return result;
    }

    /// <summary>A MAE model from a weights file (.maeml, official .pth, safetensors).</summary>
    public static MaskedAutoencoderViT LoadMae(string path, MaeLoadOptions? options = null)
    {
        if (!File.Exists(path)) throw new CliException($"weights file '{path}' does not exist");
        return MaeModelFile.LoadMae(path, options);
    }

    /// <summary>The encoder of a weights file (decoder optional) or a randomly initialised preset (seeded), in eval mode, with a
    /// one-line description of where it came from.</summary>
    public static (MaskedAutoencoderViT Model, string Description) LoadEncoder(string? weights, string? preset, int seed)
    {
        if ((weights is null) == (preset is null)) throw new CliException($"give either {Vocabulary.Weights} FILE or {Vocabulary.Model} PRESET (random initialisation)");
        MaskedAutoencoderViT model;
        string description;
        if (weights is not null)
        {
            model = LoadMae(weights, new MaeLoadOptions { AllowMissingDecoder = true });
            description = $"weights {weights}";
        }
        else
        {
            var config = Preset(preset!);
            torch.manual_seed(seed);
            model = new MaskedAutoencoderViT(config);
            description = $"random init {preset} (seed {seed})";
        }
        model.eval();
        var c = model.Config;
        return (model, $"{description}: img {c.ImageSize}, patch {c.PatchSize}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads)");
    }

    /// <summary>Runs a pretraining and prints its one-line summary.</summary>
    public static int RunPretraining(PretrainOptions options)
    {
        using var stop = new StopOnSignal();
        var result = new Pretrainer(options).Run(stop.Token);
        Console.WriteLine($"done: {result.EpochsDone} epoch(s), {result.OptimizerSteps} optimizer steps, last epoch loss {result.LastEpochLoss:F4}, " +
                          $"{result.ImagesPerSecond:F0} img/s overall; checkpoint {result.CheckpointPath}" +
                          (result.StoppedByTimeLimit ? $" (stopped by the time limit after {result.EpochsDone} of {options.Epochs} epochs, mid-schedule: {Vocabulary.Resume} auto finishes the same schedule)" : ""));
        return 0;
    }

    /// <summary>An image of a class folder as a row of an ML.NET data view.</summary>
    public sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }
}
