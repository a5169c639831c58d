using System.CommandLine;
using System.Globalization;
using MaeMl.Detection;

namespace MaeMl.Cli;

/// <summary>The box-annotation options of <c>detect-train</c> and <c>detect-eval</c>: YOLO txt folders, Pascal VOC XML folders or a COCO JSON file.</summary>
public sealed class DetectionDataOptions
{
    public Option<string> Format { get; } = new("--format") { Description = "yolo (labels: folder of stem.txt), voc (labels: folder of XML) or coco (labels: JSON file).", DefaultValueFactory = _ => "yolo" };
    public Option<string> Images { get; } = new Option<string>(Vocabulary.Train) { Description = "Training images (a folder; annotations in --labels)." }.Legacy("--images");
    public Option<string> Labels { get; } = new("--labels") { Description = "Training annotations (see --format)." };
    public Option<string> ValImages { get; } = new Option<string>(Vocabulary.Val) { Description = "Validation images (a folder; annotations in --val-labels).", Required = true }.Legacy("--val-images");
    public Option<string> ValLabels { get; } = new("--val-labels") { Description = "Validation annotations (see --format).", Required = true };
    public Option<string?> ClassNames { get; } = new("--names") { Description = "YOLO class names: comma-separated, or a YAML file with a 'names:' block (VOC and COCO files name their classes)." };
    public Option<string?> KeepClasses { get; } = new("--keep-classes") { Description = "Train and evaluate on these class ids only, renumbered, e.g. 0 for COCO's person." };
    public Option<bool> Stream { get; } = new("--stream") { Description = "Read the boxes now and decode each batch's images on background threads instead of holding the set in memory (large sets; same results)." };
    public Option<string> Resize { get; } = new("--resize") { Description = "stretch or letterbox.", DefaultValueFactory = _ => "stretch" };

    public void AddTo(Command command, bool training)
    {
        if (training) { Images.Required = true; Labels.Required = true; command.Options.Add(Images); command.Options.Add(Labels); }
        foreach (var o in new Option[] { Format, ValImages, ValLabels, ClassNames, KeepClasses, Resize, Stream }) command.Options.Add(o);
    }

    public DetectionResize ReadResize(ParseResult parse) => parse.GetValue(Resize)!.ToLowerInvariant() switch
    {
        "stretch" => DetectionResize.Stretch, "letterbox" => DetectionResize.Letterbox,
        var r => throw new CliException($"unknown --resize '{r}' (use stretch or letterbox)"),
    };

    public DetectionDataset Load(ParseResult parse, int size, bool validation, int limit = 0)
    {
        string images = parse.GetValue(validation ? ValImages : Images)!, labels = parse.GetValue(validation ? ValLabels : Labels)!;
        int? lim = limit > 0 ? limit : null;
        var resize = ReadResize(parse);
        bool stream = parse.GetValue(Stream);
        var data = parse.GetValue(Format)!.ToLowerInvariant() switch
        {
            "yolo" => DetectionDataset.FromYolo(images, labels, YoloNames(parse), size, resize, lim, stream),
            "voc" => DetectionDataset.FromPascalVoc(images, labels, CliHelpers.ClassNames(parse.GetValue(ClassNames)), size, resize, lim, stream),
            "coco" => DetectionDataset.FromCoco(images, labels, size, resize, lim, stream),
            var f => throw new CliException($"unknown --format '{f}' (use yolo, voc or coco)"),
        };
        var keep = parse.GetValue(KeepClasses);
        if (string.IsNullOrWhiteSpace(keep)) return data;
        var ids = keep.Split(',', StringSplitOptions.TrimEntries).Select(s => int.TryParse(s, CultureInfo.InvariantCulture, out var v) && v >= 0 && v < data.ClassNames.Count ? v
            : throw new CliException($"--keep-classes: '{s}' is not a class id below {data.ClassNames.Count}")).ToArray();
        using (data) return data.Subset(ids);
    }

    List<string> YoloNames(ParseResult parse)
    {
        var names = CliHelpers.ClassNames(parse.GetValue(ClassNames));
        return names.Count > 0 ? names : throw new CliException("YOLO labels carry class ids only: give --names (a comma-separated list or the dataset's YAML)");
    }
}
