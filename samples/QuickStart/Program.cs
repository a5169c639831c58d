// MaeMl quick start: load the shipped CIFAR-10 MAE, draw its reconstructions, then use its encoder as an ML.NET
// featurizer for a classifier on the bundled labelled images. Runs in a couple of minutes on 2 cores, no downloads.
// Run from the repository root:  dotnet run --project samples/QuickStart -c Release
using System.Diagnostics;
using MaeMl.Data;
using MaeMl.MLNet;
using MaeMl.Pretrained;
using MaeMl.Visualization;
using Microsoft.ML;
using Microsoft.ML.Data;

var root = args.Length > 0 ? args[0] : Path.Combine("samples", "data", "cifar10-mini");
var output = args.Length > 1 ? args[1] : Path.Combine("runs", "quickstart");
if (!Directory.Exists(root)) { Console.Error.WriteLine($"'{root}' not found: run from the repository root or pass the data folder"); return 2; }
Directory.CreateDirectory(output);
var clock = Stopwatch.StartNew();

// 1. The pretrained MAE and the paper's reconstruction figure on held-out images.
using (var mae = MaePretrained.Load("cifar10-vit-tiny"))
{
    var test = ImageFolder.Labelled(Path.Combine(root, "test"));
    var picks = Enumerable.Range(0, 8).Select(i => test.Samples[i * test.Samples.Count / 8].Path).ToList();
    var grid = Path.Combine(output, "reconstruction.png");
    ReconstructionGrid.Write(mae, picks, grid, seed: 0);
    Console.WriteLine($"reconstruction grid: {grid}");
}

// 2. ML.NET: MAE encoder as a featurizer + an ML.NET trainer, evaluated on the test images.
var ml = new MLContext(seed: 0);
IDataView Load(string split) => ml.Data.LoadFromEnumerable(ImageFolder.Labelled(Path.Combine(root, split)).Samples
    .Select(s => new ImageRow { ImagePath = s.Path, Label = Path.GetFileName(Path.GetDirectoryName(s.Path)!) }));
var train = Load("train");
var testData = Load("test");
var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", "Label")
    .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageRow.ImagePath)))
    .Append(ml.Transforms.ApplyMaeEncoder("Features", "Image", MaePretrained.EncoderOnnxPath("cifar10-vit-tiny"), MaeMl.Onnx.EncoderPooling.Mean))
    .Append(ml.Transforms.NormalizeMinMax("Features"))
    .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("LabelKey", "Features"))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(train);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testData), labelColumnName: "LabelKey");
Console.WriteLine($"ML.NET LbfgsMaximumEntropy on frozen MAE features ({ImageFolder.Labelled(Path.Combine(root, "train")).Samples.Count} train / " +
                  $"{ImageFolder.Labelled(Path.Combine(root, "test")).Samples.Count} test images):");
Console.WriteLine($"  micro accuracy {metrics.MicroAccuracy:P1}, macro accuracy {metrics.MacroAccuracy:P1}, log-loss {metrics.LogLoss:F3}");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());
var saved = Path.Combine(output, "classifier.zip");
ml.Model.Save(model, train.Schema, saved);
Console.WriteLine($"pipeline saved to {saved}; done in {clock.Elapsed.TotalSeconds:F0} s");
return 0;

sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}
