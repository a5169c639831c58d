using System.CommandLine;
using MaeMl.Segmentation;
using MaeMl.Visualization;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml segment-eval</c>: mIoU, per-class IoU and pixel accuracy of a model saved by <c>segment-train</c>.</summary>
public static class SegmentEvalCommand
{
    public static Command Create()
    {
        var command = new Command("segment-eval", "Evaluate a segmentation model (from segment-train --output) on image + mask folders: mIoU, per-class IoU, pixel accuracy; optionally draw the masks.");
        var modelFile = new Option<string>("--model-file") { Description = "Model saved by segment-train.", Required = true };
        var picture = new Option<string?>("--picture") { Description = "PNG with image, true mask and predicted mask of the first images." };
        command.Options.Add(modelFile);
        command.Options.Add(picture);
        var data = new SegmentationDataOptions();
        data.AddTo(command, withValidation: false);
        command.SetAction(parse => ModelFileOptions.Run(() =>
        {
            var (model, header) = SegmentationModelFile.Load(parse.GetValue(modelFile)!);
            using (model)
            {
                using var val = data.Load(parse, model.Config.Encoder.ImageSize, validation: true, numClasses: model.Config.NumClasses, ignore: header.IgnoreIndex);
                Console.WriteLine($"{model.Config.Head} head, {model.Config.NumClasses} classes, {val.Count} images at {model.Config.Encoder.ImageSize}x{model.Config.Encoder.ImageSize}");
                Report(SegmentationTrainer.Evaluate(model, val), "val", header.ClassNames);
                if (parse.GetValue(picture) is { } p) Draw(model, val, p);
            }
            return 0;
        }));
        return command;
    }

    internal static void Report(SegmentationMetrics m, string split, IReadOnlyList<string> names)
    {
        Console.WriteLine($"{split}: mIoU {m.MeanIoU:P2}, pixel accuracy {m.PixelAccuracy:P2} ({m.Pixels} labelled pixels)");
        if (names.Count == 0) return;
        var iou = m.PerClassIoU();
        var best = Enumerable.Range(0, iou.Length).Where(c => !double.IsNaN(iou[c])).OrderByDescending(c => iou[c]).Take(10)
            .Select(c => $"{(c < names.Count ? names[c] : c.ToString())} {iou[c]:P1}");
        Console.WriteLine($"  best classes: {string.Join(", ", best)}");
    }

    internal static void Draw(SegmentationModel model, SegmentationDataset data, string path, int count = 6)
    {
        int n = Math.Min(count, data.Count);
        using var predicted = SegmentationTrainer.Predict(model, data.Images[..n]);
        int plane = model.Config.Encoder.ImageSize * model.Config.Encoder.ImageSize;
        var pred = predicted.data<long>().ToArray();
        var truth = data.Labels[..n].contiguous().data<long>().ToArray();
        DensePredictionPicture.Masks(path, data.ImagePaths.Take(n).ToList(), model.Config.Encoder.ImageSize,
            Enumerable.Range(0, n).Select(i => truth[(i * plane)..((i + 1) * plane)]).ToList(),
            Enumerable.Range(0, n).Select(i => pred[(i * plane)..((i + 1) * plane)]).ToList(), data.IgnoreIndex);
        Console.WriteLine($"wrote {path}");
    }
}
