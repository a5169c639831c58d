using System.CommandLine;
using MaeMl.Detection;
using static TorchSharp.torch;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml detect-train</c>: fine-tunes a MAE ViT with ViTDet's simple feature pyramid and an FCOS head, then reports validation AP.</summary>
public static class DetectTrainCommand
{
    static readonly DetectionConfig Defaults = new(new Model.MaeConfig(), 1);

    public static Command Create()
    {
        var command = new Command("detect-train", "Object detection: fine-tune a ViT (MAE-initialised or from scratch) with ViTDet's simple feature pyramid and an FCOS head (focal + GIoU + centerness) on YOLO / VOC / COCO boxes; print validation COCO-style mAP@[.5:.95] and AP50.");
        var dense = new DenseTrainingOptionGroup();
        dense.AddTo(command);
        var data = new DetectionDataOptions();
        data.AddTo(command, training: true);
        var convs = new Option<int>("--head-convs") { Description = "Conv layers per FCOS tower (FCOS: 4).", DefaultValueFactory = _ => Defaults.HeadConvs };
        var threshold = new Option<float>("--score-threshold") { Description = "Only scores above this become detections (in [0, 1)); the saved model keeps it.", DefaultValueFactory = _ => Defaults.ScoreThreshold };
        var nmsIoU = new Option<float>("--nms-iou") { Description = "IoU above which NMS drops the lower-scored box of the same class.", DefaultValueFactory = _ => Defaults.NmsIoU };
        var maxDetections = new Option<int>("--max-detections") { Description = "Detections per image at most, all classes together (COCO: 100).", DefaultValueFactory = _ => Defaults.MaxDetections };
        foreach (var o in new Option[] { convs, threshold, nmsIoU, maxDetections }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var (encoder, weights, description) = dense.ReadBackbone(parse);
            if (!encoder.IsSquare) throw new CliException($"detect-train takes a square --image-size (one number), got {encoder.InputSize}: non-square inputs are for segment-train");
            using var train = data.Load(parse, encoder.ImageSize, validation: false, parse.GetValue(dense.Limit));
            using var val = data.Load(parse, encoder.ImageSize, validation: true);
            var config = new DetectionConfig(encoder, train.ClassNames.Count, parse.GetValue(dense.PyramidChannels), dense.ReadScales(parse), parse.GetValue(convs))
                { ScoreThreshold = parse.GetValue(threshold), NmsIoU = parse.GetValue(nmsIoU), MaxDetections = parse.GetValue(maxDetections), Attention = dense.ReadAttention(parse, encoder) };
            config.Validate();
            using var model = new DetectionModel(config);
            if (weights is not null) { Reports.LoadEncoder(model.Vit, weights); foreach (var t in weights.Values) t.Dispose(); }
            Console.WriteLine(description);
            Console.WriteLine($"backbone: {model.Vit.BackboneAttention.Describe()}");
            Console.WriteLine($"FCOS on strides {string.Join(",", model.Strides)}, {config.NumClasses} classes, train {train.Count} images ({train.Boxes.Sum(b => b.Length)} boxes), " +
                              $"val {val.Count} images ({val.Boxes.Sum(b => b.Length)} boxes), torch threads {get_num_threads()}");
            var progress = new MaeMl.Training.ConsoleProgress();
            using var stop = new StopOnSignal();
            var result = DetectionTrainer.Train(model, train, dense.ReadTraining(parse), progress.Line, stop.Token, validation: val, progress: progress);
            Console.WriteLine($"trained {result.Steps} steps in {result.Seconds:F0} s" + (result.StoppedByTimeLimit ? " (stopped at the time limit)" : ""));
            Console.WriteLine(Reports.Describe(config));
            Reports.Detection(DetectionTrainer.Evaluate(model, train), "train", train.ClassNames);
            var predicted = DetectionTrainer.Predict(model, val);   // once, for the AP and the breakdown
            Reports.Detection(DetectionTrainer.Evaluate(model, val, predicted), "val", val.ClassNames);
            Reports.DetectionBreakdown(predicted, val, "val");
            if (dense.ModelPath(parse) is { } output) { DetectionModelFile.Save(model, output, train.ClassNames); Console.WriteLine($"saved {output}"); }
            if (parse.GetValue(dense.Picture) is { } picture) Reports.DrawBoxes(model, val, picture, data.ReadResize(parse));
            return 0;
        });
        return command;
    }
}
