using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Evaluation;
using MaeMl.Interop;
using TorchSharp;
using MaeMl.Files;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml eval</c>: top-1/top-5, per-class accuracy and confusion matrix of a classifier on class folders.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var modelFile = new Option<string>("--model") { Description = "Classifier: a checkpoint of 'maeml finetune'/'linprobe', or an official fine-tuned .pth / safetensors", Required = true };
        var data = new Option<string>("--data") { Description = "Images in class folders (DIR/<class>/*.jpg)", Required = true };
        var limit = new Option<int?>("--limit-per-class") { Description = "Use at most this many images per class" };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 128 };
        var crop = new Option<double?>("--crop-pct") { Description = "Center-crop fraction (default: what the checkpoint was validated with, else 0.875)" };
        var output = new Option<string?>("--out") { Description = "Write the metrics (with confusion matrix) as JSON here" };
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = default)", DefaultValueFactory = _ => 0 };
        var heads = new Option<int?>("--heads") { Description = "Attention heads, for .pth/safetensors files of an unknown architecture" };
        var command = new Command("eval", "Evaluate a classifier on class folders: top-1/top-5, per-class accuracy, confusion matrix.")
        { modelFile, data, limit, batch, crop, output, threads, heads };
        command.SetAction(r => ModelFileOptions.Run(() =>
        {
            if (r.GetValue(threads) is > 0 and var t) torch.set_num_threads(t);
            var path = r.GetValue(modelFile)!;
            IReadOnlyList<string>? names = null;
            double cropPct = 224.0 / 256.0;
            if (ClassifierCheckpoint.IsClassifierCheckpoint(path))
            {
                var header = ClassifierCheckpoint.ReadHeader(path);
                if (header.ClassNames.Count > 0) names = header.ClassNames;
                if (header.Training["options"]?["EvalCropPct"]?.GetValue<double>() is double c) cropPct = c;
            }
            cropPct = r.GetValue(crop) ?? cropPct;
            using var model = MaeModelFile.LoadClassifier(path, new MaeLoadOptions { NumHeads = r.GetValue(heads) });
            var folder = ImageFolder.Labelled(r.GetValue(data)!, r.GetValue(limit), names);
            if (folder.Classes.Count != model.Config.NumClasses)
                throw new CliException($"'{path}' predicts {model.Config.NumClasses} classes but '{r.GetValue(data)}' has {folder.Classes.Count} class folders");
            int size = model.Config.Encoder.ImageSize;
            var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.ResizeCenterCrop(size, cropPct), size, r.GetValue(batch),
                shuffle: false, dropLast: false, seed: 0);
            var watch = Stopwatch.StartNew();
            var metrics = ClassifierEvaluation.Evaluate(model, loader, folder.Classes);
            Console.WriteLine($"{path} on {folder.Samples.Count} images of {folder.Classes.Count} classes (crop pct {cropPct}), {watch.Elapsed.TotalSeconds:F1} s");
            Console.Write(metrics.Format());
            if (loader.Unreadable.Count > 0) Console.WriteLine($"{loader.Unreadable.Count} unreadable image(s) skipped");
            if (r.GetValue(output) is string json)
            {
                AtomicFile.Write(json, s => JsonSerializer.Serialize(s, metrics.ToJson(), new JsonSerializerOptions { WriteIndented = true }));
                Console.WriteLine($"metrics written to {json}");
            }
            return 0;
        }));
        return command;
    }
}
