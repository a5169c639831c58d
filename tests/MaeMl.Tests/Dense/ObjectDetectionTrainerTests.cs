using System.Globalization;
using MaeMl.Heads;
using MaeMl.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;

namespace MaeMl.Tests.Dense;

/// <summary>The ML.NET object-detection trainer: ML.NET's column layout, keys like the label, save and reload.</summary>
public sealed class ObjectDetectionTrainerTests : IDisposable
{
    readonly string dir = TestImages.TempDir("det-mlnet");
    public void Dispose() => Directory.Delete(dir, true);

    public sealed class Row
    {
        public string ImagePath { get; set; } = "";
        public string[] LabelNames { get; set; } = [];
        public float[] Box { get; set; } = [];
    }

    [Fact]
    public void Fit_trains_in_torchsharp_and_returns_a_saveable_mlnet_model()
    {
        var (images, labels, _) = DenseTestData.Write(dir, 8, size: 48);
        var rows = Directory.GetFiles(images).OrderBy(p => p).Select(p =>
        {
            var f = File.ReadAllText(Path.Combine(labels, Path.GetFileNameWithoutExtension(p) + ".txt")).Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            float cx = f[1] * 48, cy = f[2] * 48, w = f[3] * 48, h = f[4] * 48;
            return new Row { ImagePath = p, LabelNames = [f[0] == 0 ? "square" : "circle"], Box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] };
        }).ToList();
        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromEnumerable(rows);
        var onnx = Path.Combine(dir, "det.onnx");
        var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(ml, new MaeObjectDetectionOptions
        {
            Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, HeadConvs = 1, OnnxModelFile = onnx,
            Training = new DenseTrainingOptions { Epochs = 3, BatchSize = 4, Lr = 2e-3, BackboneLrScale = 1 },
        });
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "LabelNames")
            .Append(ml.Transforms.LoadImages("Image", null, "ImagePath"))
            .Append(trainer);
        var model = pipeline.Fit(data);
        using (trainer.TrainedModel) Assert.NotNull(trainer.TrainedModel);
        var scored = model.Transform(data);
        var predicted = scored.Schema["PredictedLabel"];
        var key = Assert.IsType<KeyDataViewType>(Assert.IsType<VectorDataViewType>(predicted.Type).ItemType);
        Assert.Equal(2ul, key.Count);
        Assert.Equal(scored.Schema["Label"].Type, predicted.Type);   // same key type as the label
        Assert.IsType<VectorDataViewType>(scored.Schema["Score"].Type);
        Assert.IsType<VectorDataViewType>(scored.Schema["PredictedBoundingBoxes"].Type);
        Assert.DoesNotContain(scored.Schema, c => c.Name.StartsWith("MaeDetection.") || c.Name.StartsWith("det_") || c.Name.StartsWith("mae_"));
        var boxes = scored.GetColumn<VBuffer<float>>("PredictedBoundingBoxes").Select(v => v.DenseValues().ToArray()).ToArray();
        var scores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var keys = scored.GetColumn<VBuffer<uint>>("PredictedLabel").Select(v => v.DenseValues().ToArray()).ToArray();
        Assert.All(Enumerable.Range(0, rows.Count), i => { Assert.Equal(4 * scores[i].Length, boxes[i].Length); Assert.Equal(scores[i].Length, keys[i].Length); });
        Assert.All(keys.SelectMany(k => k), k => Assert.InRange(k, 1u, 2u));

        var zip = Path.Combine(dir, "det.zip");
        ml.Model.Save(model, data.Schema, zip);
        File.Delete(onnx);
        var reloaded = new MLContext().Model.Load(zip, out _).Transform(data);
        Assert.Equal(scores.SelectMany(s => s), reloaded.GetColumn<VBuffer<float>>("Score").SelectMany(v => v.DenseValues()));
        Assert.Equal(keys.SelectMany(s => s), reloaded.GetColumn<VBuffer<uint>>("PredictedLabel").SelectMany(v => v.DenseValues()));
    }
}
