using System.CommandLine;
using MaeMl.Segmentation;
using static TorchSharp.torch;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml segment-train</c>: fine-tunes a MAE ViT with a segmentation head on image + mask folders, then reports validation mIoU.</summary>
public static class SegmentTrainCommand
{
    public static Command Create()
    {
        var command = new Command("segment-train", "Semantic segmentation: fine-tune a ViT (MAE-initialised or from scratch) with a linear, pyramid or UperNet head on image + mask PNG folders (pixel = class id); print validation mIoU and pixel accuracy.");
        var dense = new DenseTrainingOptionGroup();
        dense.AddTo(command);
        var data = new SegmentationDataOptions();
        data.AddTo(command, withValidation: true);
        var head = new Option<string>("--head") { Description = "linear (per-patch baseline), pyramid (FPN-lite on the simple feature pyramid) or upernet (UperNet: pyramid pooling on the coarsest level + FPN, the MAE paper's head; --pyramid-channels is its width, mmseg: 512).", DefaultValueFactory = _ => "pyramid" };
        command.Options.Add(head);
        command.SetAction(parse =>
        {
            var kind = parse.GetValue(head)!.ToLowerInvariant() switch
            {
                "linear" => SegmentationHeadKind.Linear, "pyramid" => SegmentationHeadKind.Pyramid, "upernet" => SegmentationHeadKind.UperNet,
                var h => throw new CliException($"unknown head '{h}' (use linear, pyramid or upernet)"),
            };
            var (encoder, weights, description) = dense.ReadBackbone(parse);
            var config = new SegmentationConfig(encoder, data.Classes(parse), kind, parse.GetValue(dense.PyramidChannels), dense.ReadScales(parse)) { Attention = dense.ReadAttention(parse, encoder) };
            using var model = new SegmentationModel(config);
            if (weights is not null) { Reports.LoadEncoder(model.Vit, weights); foreach (var t in weights.Values) t.Dispose(); }
            Console.WriteLine(description);
            Console.WriteLine($"backbone: {model.Vit.BackboneAttention.Describe()}");
            using var train = data.Load(parse, encoder.InputSize, validation: false, parse.GetValue(dense.Limit));
            using var val = data.Load(parse, encoder.InputSize, validation: true);
            Console.WriteLine($"head {kind}, {config.NumClasses} classes (ignore {train.IgnoreIndex}), train {train.Count} images, val {val.Count} images, torch threads {get_num_threads()}");
            var options = dense.ReadTraining(parse);
            var progress = new MaeMl.Training.ConsoleProgress();
            using var stop = new StopOnSignal();
            var result = SegmentationTrainer.Train(model, train, options, progress.Line, stop.Token, validation: val, progress: progress, classNames: data.Names(parse));
            Console.WriteLine($"trained {result.Steps} steps in {result.Seconds:F0} s" + (result.StoppedByTimeLimit ? " (stopped at the time limit)" : ""));
            Reports.Segmentation(SegmentationTrainer.Evaluate(model, train), "train", []);
            Reports.Segmentation(SegmentationTrainer.Evaluate(model, val), "val", data.Names(parse));
            Reports.SegmentationAtMaskSize(model, val, "val", data.Names(parse));
            if (dense.ModelPath(parse) is { } output) { SegmentationModelFile.Save(model, output, data.Names(parse), train.IgnoreIndex); Console.WriteLine($"saved {output}"); }
            if (parse.GetValue(dense.Picture) is { } picture) Reports.DrawMasks(model, val, picture, data.Names(parse));
            return 0;
        });
        return command;
    }
}
