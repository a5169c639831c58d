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
        command.Options.Add(weights);
        command.Options.Add(picture);
        command.Options.Add(threads);
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
                Console.WriteLine(Reports.Describe(model.Config));
                Reports.Detection(DetectionTrainer.Evaluate(model, val), "val", header.ClassNames);
                if (parse.GetValue(picture) is { } p) Reports.DrawBoxes(model, val, p, data.ReadResize(parse));
            }
            return 0;
        });
        return command;
    }
}
