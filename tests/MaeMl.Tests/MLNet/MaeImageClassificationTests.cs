using MaeMl.Checkpoints;
using MaeMl.MLNet;
using MaeMl.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>The ML.NET trainer end to end on tiny generated images: key labels, ML.NET's output columns, save/load, bad input.</summary>
public sealed class MaeImageClassificationTests(ITestOutputHelper output)
{
    static readonly MaeConfig Tiny = new() { ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 };

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
        var estimator = ml.MulticlassClassification.Trainers.MaeImageClassification(new MaeImageClassificationOptions
        {
            StartCheckpoint = checkpoint, Epochs = 2, BatchSize = 6, ValidationSet = test, WorkingDirectory = Path.Combine(dir, "work"), Log = logs.Add,
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
            new MaeImageClassificationOptions { StartCheckpoint = checkpoint, Epochs = 1, BatchSize = 4, WorkingDirectory = TestImages.TempDir("work"), Log = log is null ? null : log.Add });
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
}
