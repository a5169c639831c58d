using System.CommandLine;
using MaeMl.Detection;
using MaeMl.Visualization;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml detect-eval</c>: COCO-style AP of a model saved by <c>detect-train</c>.</summary>
public static class DetectEvalCommand
{
    public static Command Create()
    {
        var command = new Command("detect-eval", "Evaluate a detection model (from detect-train --output): COCO-style mAP@[.5:.95], AP50, AP75 and per-class AP; optionally draw the boxes.");
        var modelFile = new Option<string>("--model-file") { Description = "Model saved by detect-train.", Required = true };
        var picture = new Option<string?>("--picture") { Description = "PNG with true (left) and predicted (right) boxes of the first images." };
        command.Options.Add(modelFile);
        command.Options.Add(picture);
        var data = new DetectionDataOptions();
        data.AddTo(command, training: false);
        command.SetAction(parse => ModelFileOptions.Run(() =>
        {
            var (model, header) = DetectionModelFile.Load(parse.GetValue(modelFile)!);
            using (model)
            {
                using var val = data.Load(parse, model.Config.Encoder.ImageSize, validation: true);
                if (val.ClassNames.Count != model.Config.NumClasses)
                    throw new CliException($"the model has {model.Config.NumClasses} classes ({string.Join(", ", header.ClassNames.Take(5))}...), the data {val.ClassNames.Count}: use the same --names / --keep-classes as in training");
                Console.WriteLine(Describe(model.Config));
                Report(DetectionTrainer.Evaluate(model, val), "val", header.ClassNames);
                if (parse.GetValue(picture) is { } p) Draw(model, val, p, data.ReadResize(parse));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The post-processing the AP is measured with (that of the exported ONNX model too).</summary>
    internal static string Describe(DetectionConfig c) =>
        FormattableString.Invariant($"detections: scores above {c.ScoreThreshold}, best {c.PreNmsTopK} candidates, class-wise NMS at IoU {c.NmsIoU}, at most {c.MaxDetections} an image");

    internal static void Report(DetectionEvaluation e, string split, IReadOnlyList<string> names)
    {
        Console.WriteLine($"{split}: mAP@[.5:.95] {e.MAP:F4}, AP50 {e.AP50:F4}, AP75 {e.AP75:F4} ({e.GroundTruthBoxes} boxes, {e.Detections} detections)");
        var per = Enumerable.Range(0, e.PerClassAP.Length).Where(c => !double.IsNaN(e.PerClassAP[c])).OrderByDescending(c => e.PerClassAP[c]).Take(8)
            .Select(c => $"{(c < names.Count ? names[c] : c.ToString())} {e.PerClassAP[c]:F3}");
        Console.WriteLine($"  AP by class (best): {string.Join(", ", per)}");
    }

    internal static void Draw(DetectionModel model, DetectionDataset data, string path, DetectionResize resize, int count = 6)
    {
        int n = Math.Min(count, data.Count);
        var predicted = DetectionTrainer.Predict(model, data.Images[..n]);
        DetectionPicture.Boxes(path, data.ImagePaths.Take(n).ToList(), model.Config.Encoder.ImageSize, data.Boxes.Take(n).ToList(), predicted, data.ClassNames, resize);
        Console.WriteLine($"wrote {path}");
    }
}
