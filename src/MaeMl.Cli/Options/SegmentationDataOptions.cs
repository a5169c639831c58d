using System.CommandLine;
using MaeMl.Model;
using MaeMl.Segmentation;

namespace MaeMl.Cli;

/// <summary>The image/mask folder options of <c>segment-train</c> and <c>segment-eval</c>.</summary>
public sealed class SegmentationDataOptions
{
    public Option<string> Images { get; } = new Option<string>(Vocabulary.Train) { Description = "Training images (a folder; masks in --masks)." }.Legacy("--images");
    public Option<string> Masks { get; } = new("--masks") { Description = "Training masks: single-channel PNGs named as the images, pixel = class id." };
    public Option<string> ValImages { get; } = new Option<string>(Vocabulary.Val) { Description = "Validation images (a folder; masks in --val-masks).", Required = true }.Legacy("--val-images");
    public Option<string> ValMasks { get; } = new("--val-masks") { Description = "Validation masks, named as the validation images.", Required = true };
    public Option<int> NumClasses { get; } = new("--classes") { Description = "Number of class ids (ids >= this are ignored); COCO128 panoptic ids go to 200.", DefaultValueFactory = _ => 201 };
    public Option<int> IgnoreValue { get; } = new("--ignore-value") { Description = "Mask value meaning 'not labelled' (COCO128: 0).", DefaultValueFactory = _ => 255 };
    public Option<bool> Stream { get; } = new("--stream") { Description = "Decode images and masks batch by batch on background threads instead of holding the set in memory (large sets; same results)." };
    public Option<string?> ClassNames { get; } = new("--names") { Description = "Class names: comma-separated, or a YAML file with a 'classes:'/'names:' block." };

    public void AddTo(Command command, bool withValidation)
    {
        if (withValidation) { Images.Required = true; Masks.Required = true; command.Options.Add(Images); command.Options.Add(Masks); }
        foreach (var o in new Option[] { ValImages, ValMasks }) command.Options.Add(o);
        if (withValidation) foreach (var o in new Option[] { NumClasses, IgnoreValue }) command.Options.Add(o);
        command.Options.Add(ClassNames);
        command.Options.Add(Stream);
    }

    public int Classes(ParseResult parse) => parse.GetValue(NumClasses);
    public List<string> Names(ParseResult parse) => CliHelpers.ClassNames(parse.GetValue(ClassNames));

    public SegmentationDataset Load(ParseResult parse, InputSize size, bool validation, int limit = 0, int? numClasses = null, int? ignore = null)
    {
        var pairs = SegmentationDataset.Pair(parse.GetValue(validation ? ValImages : Images)!, parse.GetValue(validation ? ValMasks : Masks)!, limit > 0 ? limit : null);
        int k = numClasses ?? parse.GetValue(NumClasses), ignoreValue = ignore ?? parse.GetValue(IgnoreValue);
        return parse.GetValue(Stream) ? SegmentationDataset.Stream(pairs, size, k, ignoreValue) : SegmentationDataset.Load(pairs, size, k, ignoreValue);
    }
}
