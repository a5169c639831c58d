using System.CommandLine;
using MaeMl.Segmentation;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml segment-eval</c>: mIoU, per-class IoU and pixel accuracy of a model saved by <c>segment-train</c>.</summary>
public static class SegmentEvalCommand
{
    public static Command Create()
    {
        var command = new Command("segment-eval", "Evaluate a segmentation model (from segment-train --out) on image + mask folders: mIoU, per-class IoU, pixel accuracy; optionally draw the masks.");
        var weights = new Option<string>(Vocabulary.Weights) { Description = "Model file saved by segment-train --out.", Required = true }.Legacy("--model-file");
        var picture = new Option<string?>("--picture") { Description = "PNG with image, true mask and predicted mask of the first images." };
        var threads = Vocabulary.ThreadsOption();
        command.Options.Add(weights);
        command.Options.Add(picture);
        command.Options.Add(threads);
        var data = new SegmentationDataOptions();
        data.AddTo(command, withValidation: false);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            var (model, header) = SegmentationModelFile.Load(parse.GetValue(weights)!);
            using (model)
            {
                using var val = data.Load(parse, model.Config.Encoder.InputSize, validation: true, numClasses: model.Config.NumClasses, ignore: header.IgnoreIndex);
                Console.WriteLine($"{model.Config.Head} head, {model.Config.NumClasses} classes, {val.Count} images at {model.Config.Encoder.InputSize}");
                Reports.Segmentation(SegmentationTrainer.Evaluate(model, val), "val", header.ClassNames);
                Reports.SegmentationAtMaskSize(model, val, "val", header.ClassNames);
                if (parse.GetValue(picture) is { } p) Reports.DrawMasks(model, val, p, header.ClassNames);
            }
            return 0;
        });
        return command;
    }
}
