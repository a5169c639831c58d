using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.MLNet;
using MaeMl.Model;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>The ML.NET trainer end to end on tiny generated images: key labels, ML.NET's output columns, save/load, bad input.</summary>
[Collection("TorchGlobalRng")]
public sealed class MaeImageClassificationTests(ITestOutputHelper output)
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    public sealed class Row
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class LabelOnly
    {
        public string Label { get; set; } = "";
    }

    static (string Dir, List<Row> Rows, string Checkpoint) Data(int count, int classes)
    {
        var dir = TestImages.TempDir("mlnet-cls");
        var paths = TestImages.Write(Path.Combine(dir, "images"), count, size: 20, classes: classes, seed: 4);
        var rows = paths.Select(p => new Row { ImagePath = p, Label = classes > 1 ? Path.GetFileName(Path.GetDirectoryName(p))! : "only" }).ToList();
        TorchSharp.torch.manual_seed(1);
        using var mae = new MaskedAutoencoderViT(Tiny);
        var checkpoint = Path.Combine(dir, "pretrain.maeml");
        MaeCheckpoint.Save(checkpoint, mae);
        return (dir, rows, checkpoint);
    }

    static IDataView Load(MLContext ml, IEnumerable<Row> rows) =>
        ml.Transforms.LoadImages("Image", null, nameof(Row.ImagePath)).Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));

    [Fact]
    public void FitsPredictsWithMlNetColumnsAndRoundTripsThroughSaveAndLoad()
    {
        var (dir, rows, checkpoint) = Data(24, 3);
        var ml = new MLContext(seed: 0);
        var train = Load(ml, rows.Take(18));
        var test = Load(ml, rows.Skip(18));
        var logs = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("MaeImageClassification")) logs.Add(e.Message); };
        var estimator = ml.MulticlassClassification.Trainers.MaeImageClassification(new MaeImageClassificationOptions
        {
            StartCheckpoint = checkpoint, Epochs = 2, BatchSize = 6, ValidationSet = test, WorkingDirectory = Path.Combine(dir, "work"),
        });
        var shapeOf = typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!;
        var outputShape = estimator.GetOutputSchema((SchemaShape)shapeOf.Invoke(null, [train.Schema])!);
        Assert.Contains(outputShape, c => c.Name == "PredictedLabel" && c.IsKey);
        Assert.Contains(outputShape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector);

        var model = estimator.Fit(train);
        foreach (var line in logs.TakeLast(5)) output.WriteLine(line);
        Assert.NotNull(estimator.LastValidationMetrics);
        var scored = model.Transform(test);
        var predicted = scored.Schema["PredictedLabel"].Type;
        Assert.Equal(3UL, Assert.IsType<KeyDataViewType>(predicted).Count);
        Assert.Equal(3, ((VectorDataViewType)scored.Schema["Score"].Type).Size);
        Assert.Null(scored.Schema.GetColumnOrNull("mae_logits"));
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        output.WriteLine($"accuracy {metrics.MicroAccuracy:P1}");
        var names = ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel").Fit(scored).Transform(scored)
            .GetColumn<string>("PredictedName").ToList();
        Assert.All(names, n => Assert.Contains(n, new[] { "class0", "class1", "class2" }));
        var scores = scored.GetColumn<float[]>("Score").ToList();
        Assert.All(scores, s => Assert.Equal(1f, s.Sum(), 3));

        var zip = Path.Combine(dir, "model.zip");
        ml.Model.Save(model, train.Schema, zip);
        var reloaded = new MLContext().Model.Load(zip, out _);
        var again = reloaded.Transform(test);
        Assert.Equal(scores, again.GetColumn<float[]>("Score").ToList());
        Assert.Equal(scored.GetColumn<uint>("PredictedLabel").ToList(), again.GetColumn<uint>("PredictedLabel").ToList());
    }

    [Fact]
    public void BadInputGivesClearErrorsOrLoggedSkips()
    {
        var (dir, rows, checkpoint) = Data(8, 1);
        var ml = new MLContext(seed: 0);
        MaeImageClassificationEstimator Estimator(List<string>? log = null) => ml.MulticlassClassification.Trainers.MaeImageClassification(
            new MaeImageClassificationOptions { StartCheckpoint = checkpoint, Epochs = 1, BatchSize = 4, WorkingDirectory = TestImages.TempDir("work"), Logger = log is null ? null : new ListLogger(log) });
        var single = Assert.Throws<ArgumentException>(() => Estimator().Fit(Load(ml, rows)));
        Assert.Contains("at least two labels", single.Message);

        // a key type with a label that has no images
        var keyData = ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Data.LoadFromEnumerable(new[] { new LabelOnly { Label = "a" }, new LabelOnly { Label = "b" }, new LabelOnly { Label = "only" } }))
            .Fit(Load(ml, rows)).Transform(Load(ml, rows.Select((r, i) => new Row { ImagePath = r.ImagePath, Label = i % 2 == 0 ? "a" : "only" })));
        var missing = Assert.Throws<ArgumentException>(() => Estimator().Fit(keyData));
        Assert.Contains("'b'", missing.Message);

        // an unreadable image is skipped with a warning, the rest trains
        var broken = Path.Combine(dir, "broken.png");
        File.WriteAllText(broken, "not an image");
        var mixed = rows.Select((r, i) => new Row { ImagePath = r.ImagePath, Label = i % 2 == 0 ? "x" : "y" }).Append(new Row { ImagePath = broken, Label = "x" });
        var log = new List<string>();
        var model = Estimator(log).Fit(Load(ml, mixed));
        Assert.Contains(log, l => l.Contains("skipping training row 8"));
        Assert.NotNull(model);

        Assert.Throws<FileNotFoundException>(() => ml.MulticlassClassification.Trainers.MaeImageClassification("Label", "Image", Path.Combine(dir, "nope.maeml")));
        var noImage = Assert.Throws<ArgumentOutOfRangeException>(() => Estimator().Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("image column 'Image'", noImage.Message);
    }

    [Fact]
    public void FrozenEncoderTrainsALinearProbeWithTheSameOutputs()
    {
        var (dir, rows, checkpoint) = Data(12, 2);
        var ml = new MLContext(seed: 0);
        var data = Load(ml, rows);
        var model = ml.MulticlassClassification.Trainers.MaeImageClassification(new MaeImageClassificationOptions
        {
            StartCheckpoint = checkpoint, Epochs = 3, BatchSize = 4, FreezeEncoder = true, WorkingDirectory = Path.Combine(dir, "work"),
        }).Fit(data);
        var scored = model.Transform(data);
        Assert.Equal(2UL, Assert.IsType<KeyDataViewType>(scored.Schema["PredictedLabel"].Type).Count);
        Assert.Equal(12, scored.GetColumn<float[]>("Score").Count());
        Assert.True(File.Exists(Path.Combine(dir, "work", "run", "checkpoint-linprobe.maeml")));
    }

    /// <summary>PredictedLabel is the fine-tuned head's arg-max and Score its softmax, row by row against the TorchSharp model on the
    /// same pixels, before and after Save/Load; the key values are the class names of the label.</summary>
    [Fact]
    public void PredictionsAreTheFineTunedModelsArgMaxAndSoftmaxRowByRow()
    {
        var (dir, rows, checkpoint) = Data(40, 4);
        var ml = new MLContext(seed: 0);
        var train = Load(ml, rows.Where((_, i) => i % 5 != 0));
        var test = Load(ml, rows.Where((_, i) => i % 5 == 0));
        var estimator = ml.MulticlassClassification.Trainers.MaeImageClassification(new MaeImageClassificationOptions
        {
            StartCheckpoint = checkpoint, Epochs = 3, BatchSize = 6, WorkingDirectory = Path.Combine(dir, "work"),
        });
        var model = estimator.Fit(train);
        Assert.NotNull(estimator.LastModelFile);

        // the TorchSharp model on the pixels ML.NET's own preprocessing gives (centre crop, RGB planes 0..255)
        var (vit, _) = ClassifierCheckpoint.Load(estimator.LastModelFile!);
        using var _vit = vit;
        vit.eval();
        int s = vit.Config.Encoder.ImageSize;
        var pixels = ml.Transforms.ResizeImages("r", s, s, "Image", ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center)
            .Append(ml.Transforms.ExtractPixels("p", "r", ImagePixelExtractingEstimator.ColorBits.Rgb, ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true))
            .Fit(test).Transform(test).GetColumn<float[]>("p").ToList();
        float[][] expectedScores;
        long[] expectedIndex;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var x = torch.tensor(pixels.SelectMany(p => p).ToArray()).view(pixels.Count, 3, s, s) / 255f;
            x = (x - torch.tensor(ImageNetNormalization.Mean).view(1, 3, 1, 1)) / torch.tensor(ImageNetNormalization.Std).view(1, 3, 1, 1);
            var logits = vit.forward(x);
            expectedIndex = logits.argmax(1).data<long>().ToArray();
            var probs = torch.softmax(logits, 1);
            expectedScores = Enumerable.Range(0, pixels.Count).Select(i => probs[i].data<float>().ToArray()).ToArray();
        }
        var classNames = rows.Select(r => r.Label).Distinct().ToList();   // MapValueToKey's order: first occurrence in the training rows
        var trainOrder = rows.Where((_, i) => i % 5 != 0).Select(r => r.Label).Distinct().ToList();

        void Check(ITransformer transformer, string what)
        {
            var scored = transformer.Transform(test);
            var keys = scored.GetColumn<uint>("PredictedLabel").ToList();
            var scores = scored.GetColumn<float[]>("Score").ToList();
            var names = ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel").Fit(scored).Transform(scored).GetColumn<string>("PredictedName").ToList();
            Assert.Equal(pixels.Count, keys.Count);
            int agree = 0;
            for (int i = 0; i < keys.Count; i++)
            {
                Assert.Equal(expectedIndex[i] + 1, keys[i]);
                Assert.Equal(trainOrder[(int)expectedIndex[i]], names[i]);
                for (int c = 0; c < expectedScores[i].Length; c++) Assert.True(Math.Abs(expectedScores[i][c] - scores[i][c]) <= 1e-5, $"row {i} class {c}: {expectedScores[i][c]} vs {scores[i][c]}");
                agree++;
            }
            var metrics = ml.MulticlassClassification.Evaluate(scored);
            output.WriteLine($"{what}: PredictedLabel = TorchSharp arg-max on {agree}/{keys.Count} rows; accuracy {metrics.MicroAccuracy:P1}");
        }
        Check(model, "fitted");
        var zip = Path.Combine(dir, "model.zip");
        ml.Model.Save(model, train.Schema, zip);
        Check(new MLContext().Model.Load(zip, out _), "reloaded");
        Assert.Equal(4, classNames.Count);
    }

    /// <summary>The trainer uses the catalog's MLContext: its log receives the progress, its seed makes runs repeat, and cancelling it
    /// (or the option's token) stops Fit; without a working folder nothing is left in the temp folder.</summary>
    [Fact]
    public void UsesTheCatalogsContextAndLeavesNoTemporaryFiles()
    {
        var (_, rows, checkpoint) = Data(12, 2);
        var before = Directory.GetDirectories(Path.GetTempPath(), "maeml-imgcls-*").ToHashSet();
        float[] Run(int seed, List<string> log)
        {
            var ml = new MLContext(seed);
            ml.Log += (_, e) => { if (e.Message.Contains("MaeImageClassification")) log.Add(e.Message); };
            var data = Load(ml, rows);
            var model = ml.MulticlassClassification.Trainers.MaeImageClassification(new MaeImageClassificationOptions { StartCheckpoint = checkpoint, Epochs = 1, BatchSize = 4 }).Fit(data);
            return model.Transform(data).GetColumn<float[]>("Score").SelectMany(v => v).ToArray();
        }
        var log = new List<string>();
        var a = Run(3, log);
        var b = Run(3, []);
        Assert.Contains(log, l => l.Contains("training images held in memory"));   // trained from the IDataView, no image files
        Assert.Equal(a, b);
        Assert.DoesNotContain(Directory.GetDirectories(Path.GetTempPath(), "maeml-imgcls-*"), d => !before.Contains(d));

        // cancellation through the context (what ML.NET's own components use) and through the option's token
        var ml = new MLContext(0);
        var cancel = typeof(MLContext).GetMethod("CancelExecution", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!;
        cancel.Invoke(ml, null);
        var data = Load(ml, rows);
        Assert.ThrowsAny<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.MaeImageClassification(
            new MaeImageClassificationOptions { StartCheckpoint = checkpoint, Epochs = 50, BatchSize = 4 }).Fit(data));
        using var source = new CancellationTokenSource();
        source.Cancel();
        var ml2 = new MLContext(0);
        Assert.ThrowsAny<OperationCanceledException>(() => ml2.MulticlassClassification.Trainers.MaeImageClassification(
            new MaeImageClassificationOptions { StartCheckpoint = checkpoint, Epochs = 50, BatchSize = 4, CancellationToken = source.Token }).Fit(Load(ml2, rows)));
        Assert.DoesNotContain(Directory.GetDirectories(Path.GetTempPath(), "maeml-imgcls-*"), d => !before.Contains(d));
    }

    /// <summary>StartCheckpoint takes the name of a shipped model, as MaePretrained.Load does.</summary>
    [Fact]
    public void StartCheckpointAcceptsAShippedModelName()
    {
        var ml = new MLContext(0);
        var estimator = ml.MulticlassClassification.Trainers.MaeImageClassification("Label", "Image", "cifar10-vit-tiny", epochs: 1);
        Assert.NotNull(estimator);
        var e = Assert.Throws<FileNotFoundException>(() => ml.MulticlassClassification.Trainers.MaeImageClassification("Label", "Image", "no-such-model"));
        Assert.Contains("cifar10-vit-tiny", e.Message);
    }

    sealed class ListLogger(List<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) => lines.Add(formatter(state, exception));
    }
}
