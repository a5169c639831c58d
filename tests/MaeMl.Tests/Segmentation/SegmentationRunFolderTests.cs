using System.Text;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Segmentation;
using MaeMl.Training;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Segmentation;

/// <summary>Dense training on the one training loop: a run folder with metrics, curve and a resumable checkpoint in the task's
/// model file, exact continuation after a time limit, and the model-file layout (current and earlier).</summary>
[Collection("TorchGlobalRng")]
public sealed class SegmentationRunFolderTests : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-run");
    public void Dispose() => Directory.Delete(dir, true);

    static SegmentationModel NewModel(double dropPath = 0)
    {
        manual_seed(11);
        return new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder() with { DropPath = dropPath }, 3, SegmentationHeadKind.Pyramid, PyramidChannels: 8));
    }

    [Fact]
    public void LayerDecayScalesEachViTLayerAndLeavesThePyramidAndHeadAtTheLr()
    {
        using var model = NewModel();
        int layers = model.Vit.NumLayers;   // depth 2 + 1
        var (groups, scales) = MaeMl.Training.ParameterGroups.DenseAdamWGroups(model, MaeMl.Training.DenseTraining.VitParameterName, 1e-3, 0.5, 0.05, 0.7, layers);
        Assert.Equal(groups.Count, scales.Length);
        var expected = new[] { 0.5 * Math.Pow(0.7, 3), 0.5 * Math.Pow(0.7, 2), 0.5 * 0.7, 0.5, 1.0 };   // embeddings, block 0, block 1, final norm, pyramid + head
        Assert.Equal(expected, scales.Distinct().ToArray(), new Tolerance());
        Assert.Equal(model.parameters().Count(), groups.Sum(g => g.Parameters.Count()));
        Assert.Equal("blocks.1.mlp.fc1.weight", MaeMl.Training.DenseTraining.VitParameterName("backbone.net.blocks.1.mlp.fc1.weight"));
        Assert.Null(MaeMl.Training.DenseTraining.VitParameterName("backbone.simfp_2.0.weight"));
        Assert.Null(MaeMl.Training.DenseTraining.VitParameterName("head.0.weight"));
    }

    sealed class Tolerance : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) < 1e-12;
        public int GetHashCode(double x) => 0;
    }

    static Dictionary<string, float[]> Weights(SegmentationModel m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float32).data<float>().ToArray());

    [Fact]
    public void ATimeLimitedRunResumedFromItsFolderEndsWithTheWeightsOfAnUninterruptedRun()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 8);
        using var data = SegmentationDataset.Load(images, masks, size: 32, numClasses: 3, ignoreValue: 255);
        // drop path, layer decay, scale and colour jitter on: all drawn from (seed, epoch, step), so the resume stays exact
        var options = new DenseTrainingOptions { Epochs = 3, BatchSize = 2, Lr = 2e-3, BackboneLrScale = 0.5, LayerDecay = 0.7, MinScale = 0.6, ColourJitter = 0.2, Seed = 4 };
        string[] names = ["bg", "square", "circle"];

        using var straight = NewModel(dropPath: 0.1);
        var full = SegmentationTrainer.Train(straight, data, options with { OutputDir = Path.Combine(dir, "a") }, classNames: names, validation: data);
        Assert.Equal(12, full.Steps);
        Assert.False(full.StoppedByTimeLimit);

        var b = Path.Combine(dir, "b");
        using (var first = NewModel(dropPath: 0.1))
        {
            var stopped = SegmentationTrainer.Train(first, data, options with { OutputDir = b, TimeLimit = TimeSpan.Zero }, classNames: names);
            Assert.True(stopped.StoppedByTimeLimit);
            Assert.Equal(1, stopped.Steps);   // the first step crosses a zero limit
            var header = DenseModelFile.ReadHeader(stopped.CheckpointPath!);
            Assert.True(header.HasOptimizer);
            Assert.Equal(1, header.Training!["step_in_epoch"]!.GetValue<int>());
        }
        using var resumed = NewModel(dropPath: 0.1);   // a fresh process would build the model anew: the weights come from the checkpoint
        var rest = SegmentationTrainer.Train(resumed, data, options with { OutputDir = b, Resume = "auto" }, classNames: names);
        Assert.Equal(12, rest.Steps);

        var expected = Weights(straight);
        var actual = Weights(resumed);
        foreach (var (name, w) in expected)
            Assert.True(w.AsSpan().SequenceEqual(actual[name]), $"{name} differs after resume");

        // the run folder: metrics with a line per step and per epoch (validation in the uninterrupted one), a curve, a loadable model
        var lines = File.ReadAllLines(Path.Combine(dir, "a", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(12, lines.Count(l => l["type"]!.GetValue<string>() == "step"));
        Assert.All(lines.Where(l => l["type"]!.GetValue<string>() == "epoch"), l => Assert.InRange(l["val_miou"]!.GetValue<double>(), 0, 1));
        Assert.Equal(12, File.ReadAllLines(Path.Combine(b, "metrics.jsonl")).Count(l => l.Contains("\"type\":\"step\"")));
        Assert.True(new FileInfo(Path.Combine(dir, "a", "loss-curve.png")).Length > 0);
        var (loaded, h) = SegmentationModelFile.Load(full.CheckpointPath!);
        using (loaded) Assert.Equal(names, h.ClassNames);
    }

    [Fact]
    public void ModelFilesShareTheMaeMlLayoutAndSayWhatTheyHold()
    {
        using var model = NewModel();
        var path = Path.Combine(dir, "seg.maeml");
        SegmentationModelFile.Save(model, path, ["a", "b", "c"], ignoreIndex: 255);
        Assert.True(MaeCheckpoint.IsCheckpoint(path));   // the one container: magic, JSON header, checksummed sections
        Assert.True(DenseModelFile.IsDenseModelFile(path));
        var asMae = Assert.Throws<InvalidDataException>(() => MaeCheckpoint.ReadHeader(path));
        Assert.Contains("segmentation model", asMae.Message);
        var asClassifier = Assert.Throws<InvalidDataException>(() => ClassifierCheckpoint.ReadHeader(path));
        Assert.Contains("segmentation model", asClassifier.Message);
        var asDetector = Assert.Throws<InvalidDataException>(() => MaeMl.Detection.DetectionModelFile.Load(path));
        Assert.Contains("not a detection model", asDetector.Message);

        // a flipped byte in the weights is caught by the checksum
        var bytes = File.ReadAllBytes(path);
        bytes[^20] ^= 0x40;
        var damaged = Path.Combine(dir, "damaged.maeml");
        File.WriteAllBytes(damaged, bytes);
        Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => SegmentationModelFile.Load(damaged)).Message);
    }

    [Fact]
    public void FilesOfTheEarlierDenseContainerStillLoad()
    {
        using var model = NewModel();
        model.eval();
        var path = Path.Combine(dir, "old.model");
        using (var w = new BinaryWriter(File.Create(path), Encoding.UTF8))   // the maeml-dense-1 layout of earlier releases
        {
            w.Write("maeml-dense-1");
            w.Write(new JsonObject
            {
                ["Kind"] = "segmentation", ["Segmentation"] = System.Text.Json.JsonSerializer.SerializeToNode(model.Config), ["Detection"] = null,
                ["ClassNames"] = new JsonArray("x", "y", "z"), ["IgnoreIndex"] = 7,
            }.ToJsonString());
            model.save(w);
        }
        Assert.True(DenseModelFile.IsDenseModelFile(path));
        var (loaded, header) = SegmentationModelFile.Load(path);
        using (loaded)
        using (no_grad())
        {
            Assert.Equal(new[] { "x", "y", "z" }, header.ClassNames);
            Assert.Equal(7, header.IgnoreIndex);
            using var x = randn(1, 3, 32, 32);
            using var a = model.forward(x);
            using var b = loaded.forward(x);
            Assert.True(a.allclose(b));
        }
    }
}
