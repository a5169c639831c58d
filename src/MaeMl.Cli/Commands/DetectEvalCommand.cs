using System.CommandLine;
using MaeMl.Detection;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml detect-eval</c>: COCO-style AP of a model saved by <c>detect-train</c>.</summary>
public static class DetectEvalCommand
{
    public static Command Create()
    {
        var command = new Command("detect-eval", "Evaluate a detection model (from detect-train --out): COCO-style mAP@[.5:.95], AP50, AP75 and per-class AP; optionally draw the boxes.");
        var weights = new Option<string>(Vocabulary.Weights) { Description = "Model file saved by detect-train --out.", Required = true }.Legacy("--model-file");
        var picture = new Option<string?>("--picture") { Description = "PNG with true (left) and predicted (right) boxes of the first images." };
        var threads = Vocabulary.ThreadsOption();
        var threshold = new Option<float?>("--score-threshold") { Description = "Only scores above this become detections (default: the model's, as trained)." };
        var nmsIoU = new Option<float?>("--nms-iou") { Description = "IoU above which NMS drops the lower-scored box of the same class (default: the model's)." };
        var maxDetections = new Option<int?>("--max-detections") { Description = "Detections per image at most, all classes together (default: the model's)." };
        var save = new Option<string?>("--save") { Description = "Write the model with the selection above to this file (export-onnx and the ML.NET transforms then use it)." };
        command.Options.Add(weights);
        command.Options.Add(picture);
        command.Options.Add(threads);
        command.Options.Add(threshold);
        command.Options.Add(nmsIoU);
        command.Options.Add(maxDetections);
        command.Options.Add(save);
        var data = new DetectionDataOptions();
        data.AddTo(command, training: false);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            var (model, header) = DetectionModelFile.Load(parse.GetValue(weights)!);
            using (model)
            {
                using var val = data.Load(parse, model.Config.Encoder.ImageSize, validation: true);
                if (val.ClassNames.Count != model.Config.NumClasses)
                    throw new CliException($"the model has {model.Config.NumClasses} classes ({string.Join(", ", header.ClassNames.Take(5))}...), the data {val.ClassNames.Count}: use the same --names / --keep-classes as in training");
                var c = model.Config;
                try { model.UseSelection(parse.GetValue(threshold) ?? c.ScoreThreshold, parse.GetValue(nmsIoU) ?? c.NmsIoU, parse.GetValue(maxDetections) ?? c.MaxDetections); }
                catch (ArgumentException e) { throw new CliException(e.Message); }
                Console.WriteLine(Reports.Describe(model.Config));
                var predicted = DetectionTrainer.Predict(model, val);   // once, for the AP and the breakdown
                Reports.Detection(DetectionTrainer.Evaluate(model, val, predicted), "val", header.ClassNames);
                Reports.DetectionBreakdown(predicted, val, "val");
                if (parse.GetValue(picture) is { } p) Reports.DrawBoxes(model, val, p, data.ReadResize(parse));
                if (parse.GetValue(save) is { } output) { DetectionModelFile.Save(model, output, header.ClassNames); Console.WriteLine($"saved {output}"); }
            }
            return 0;
        });
        return command;
    }
}
