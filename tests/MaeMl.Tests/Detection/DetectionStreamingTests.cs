using MaeMl.Detection;
using MaeMl.Training;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>A streamed detection set (boxes read up front from the image headers' sizes, pixels decoded batch by batch on background
/// threads) trains and evaluates exactly as the same set held in memory.</summary>
[Collection("TorchGlobalRng")]
public sealed class DetectionStreamingTests : IDisposable
{
    readonly string dir = TestImages.TempDir("det-stream");
    public void Dispose() => Directory.Delete(dir, true);

    [Theory]
    [InlineData(DetectionResize.Stretch)]
    [InlineData(DetectionResize.Letterbox)]
    public void StreamedAndInMemorySetsGiveTheSameBoxesWeightsAndAP(DetectionResize resize)
    {
        var (images, labels, _) = DenseTestData.Write(dir, 7, size: 40);
        string[] names = ["square", "circle"];
        using var memory = DetectionDataset.FromYolo(images, labels, names, 32, resize);
        using var streamed = DetectionDataset.FromYolo(images, labels, names, 32, resize, stream: true);
        Assert.True(streamed.IsStreamed);
        Assert.Throws<InvalidOperationException>(() => streamed.Images);
        for (int i = 0; i < memory.Count; i++) Assert.Equal(memory.Boxes[i], streamed.Boxes[i]);
        using (var head = streamed.Head(3)) Assert.True(head.eq(memory.Images[..3]).all().item<bool>());

        var config = new DetectionConfig(DenseTestData.TinyEncoder(), 2, PyramidChannels: 8, HeadConvs: 1);
        var options = new DenseTrainingOptions { Epochs = 2, BatchSize = 3, Lr = 2e-3, BackboneLrScale = 1, MinScale = 0.7, ColourJitter = 0.1, Seed = 5 };
        manual_seed(13);
        using var a = new DetectionModel(config);
        manual_seed(13);
        using var b = new DetectionModel(config);
        var ra = DetectionTrainer.Train(a, memory, options);
        var rb = DetectionTrainer.Train(b, streamed, options);
        Assert.Equal(ra.LastEpochLoss, rb.LastEpochLoss);
        var wa = a.state_dict();
        foreach (var (name, w) in b.state_dict()) Assert.True(w.eq(wa[name]).all().item<bool>(), $"{name} differs between the streamed and the in-memory run");
        var ea = DetectionTrainer.Evaluate(a, memory, batchSize: 4);
        var eb = DetectionTrainer.Evaluate(a, streamed, batchSize: 4);   // 7 rows at 4 a batch: the partial batch counts too
        Assert.Equal(ea.MAP, eb.MAP);
        Assert.Equal(ea.Detections, eb.Detections);
    }
}
