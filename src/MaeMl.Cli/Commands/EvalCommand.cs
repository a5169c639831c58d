using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Evaluation;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using MaeMl.Files;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml eval</c>: top-1/top-5, per-class accuracy and confusion matrix of a classifier on class folders.</summary>
public static class EvalCommand
{
    /// <summary>The evaluation crop of the fine-tuning recipe, for classifiers that do not record theirs.</summary>
    static readonly double DefaultCropPct = FinetuneOptions.PaperVitBase("", "").EvalCropPct;

    public static Command Create()
    {
        var modelFile = new Option<string>(Vocabulary.Weights) { Description = "Classifier weights: a checkpoint of 'maeml finetune' / 'linprobe', an official fine-tuned .pth / safetensors, or a shipped classifier's name (cifar10-vit-tiny-finetuned).", Required = true }.Legacy("--model");
        var data = new Option<string>(Vocabulary.Val) { Description = "Held-out images in class folders (DIR/<class>/*.jpg).", Required = true }.Legacy("--data");
        var limit = new Option<int?>("--val-limit-per-class") { Description = "Use at most this many images per class (evenly spaced)." }.Legacy("--limit-per-class");
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 128 };
        var crop = new Option<double?>("--eval-crop-pct") { Description = $"Center-crop fraction (default: what the checkpoint was validated with, else {DefaultCropPct})." }.Legacy("--crop-pct");
        var output = new Option<string?>(Vocabulary.Out) { Description = "Write the metrics (with confusion matrix) as JSON here." };
        var threads = Vocabulary.ThreadsOption();
        var heads = new Option<int?>("--heads") { Description = "Attention heads, for .pth / safetensors files of an unknown architecture." };
        var command = new Command("eval", "Evaluate a classifier on class folders: top-1/top-5, per-class accuracy, confusion matrix.")
        { modelFile, data, limit, batch, crop, output, threads, heads };
        command.SetAction(r =>
        {
            Vocabulary.ApplyThreads(r.GetValue(threads));
            var path = r.GetValue(modelFile)!;
            if (!File.Exists(path) && MaePresets.All.ContainsKey(path))
                throw new CliException($"'{path}' is a preset name: eval reads a classifier's weights file ({Vocabulary.Weights} FILE)");
            path = MaeMl.Pretrained.MaePretrained.ResolveFile(path);   // a shipped classifier by name (cifar10-vit-tiny-finetuned)
            IReadOnlyList<string>? names = null;
            double cropPct = DefaultCropPct;
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
        });
        return command;
    }
}
