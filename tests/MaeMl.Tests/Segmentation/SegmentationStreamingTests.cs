using MaeMl.Segmentation;
using MaeMl.Training;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Segmentation;

/// <summary>A streamed set (decoded batch by batch on background threads) trains and evaluates exactly as the same set held in memory.</summary>
[Collection("TorchGlobalRng")]
public sealed class SegmentationStreamingTests : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-stream");
    public void Dispose() => Directory.Delete(dir, true);

    static SegmentationModel NewModel()
    {
        manual_seed(21);
        return new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(), 3, SegmentationHeadKind.Pyramid, PyramidChannels: 8));
    }

    [Fact]
    public void StreamedAndInMemorySetsGiveTheSameWeightsAndMetrics()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 7);
        var pairs = SegmentationDataset.Pair(images, masks);
        using var memory = SegmentationDataset.Load(pairs, size: 32, numClasses: 3);
        using var streamed = SegmentationDataset.Stream(pairs, size: 32, numClasses: 3);
        Assert.True(streamed.IsStreamed);
        Assert.Throws<InvalidOperationException>(() => streamed.Images);
        var (headImages, headLabels) = streamed.Head(3);
        using (headImages) using (headLabels)
        {
            Assert.True(headImages.eq(memory.Images[..3]).all().item<bool>());
            Assert.True(headLabels.eq(memory.Labels[..3]).all().item<bool>());
        }

        var options = new DenseTrainingOptions { Epochs = 2, BatchSize = 3, Lr = 2e-3, BackboneLrScale = 1, Seed = 3 };   // 7 rows: 2 batches an epoch
        using var a = NewModel();
        using var b = NewModel();
        var ra = SegmentationTrainer.Train(a, memory, options);
        var rb = SegmentationTrainer.Train(b, streamed, options);
        Assert.Equal(ra.Steps, rb.Steps);
        Assert.Equal(ra.LastEpochLoss, rb.LastEpochLoss);
        var wa = a.state_dict();
        foreach (var (name, w) in b.state_dict()) Assert.True(w.eq(wa[name]).all().item<bool>(), $"{name} differs between the streamed and the in-memory run");

        var ma = SegmentationTrainer.Evaluate(a, memory, batchSize: 4);
        var mb = SegmentationTrainer.Evaluate(a, streamed, batchSize: 4);   // 7 rows at 4 a batch: the last partial batch counts too
        Assert.Equal(ma.PixelAccuracy, mb.PixelAccuracy);
        Assert.Equal(ma.MeanIoU, mb.MeanIoU);
    }

    [Fact]
    public void AMissingFileIsNamedWhenTheStreamedSetIsMade()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 2);
        var pairs = SegmentationDataset.Pair(images, masks);
        File.Delete(pairs[1].Mask);
        var e = Assert.Throws<FileNotFoundException>(() => SegmentationDataset.Stream(pairs, 32, 3));
        Assert.Contains(Path.GetFileName(pairs[1].Mask), e.Message);
    }
}
