using MaeMl.Training;
using MaeMl.Segmentation;
using Xunit;

namespace MaeMl.Tests.Segmentation;

public class SegmentationTests
{
    [Fact]
    public void MetricsOnHandMadeCases()
    {
        // labels:     0 0 1 1 2 255     predicted: 0 1 1 1 0 2
        var m = new SegmentationMetrics(numClasses: 3, ignoreIndex: 255);
        m.Add(new[] { 0, 1, 1, 1, 0, 2 }, new[] { 0, 0, 1, 1, 2, 255 });
        var iou = m.PerClassIoU();
        Assert.Equal(1.0 / 3, iou[0], 9);   // tp 1, fn 1, fp 1
        Assert.Equal(2.0 / 3, iou[1], 9);   // tp 2, fp 1
        Assert.Equal(0.0, iou[2], 9);       // tp 0, fn 1
        Assert.Equal((1.0 / 3 + 2.0 / 3 + 0) / 3, m.MeanIoU, 9);
        Assert.Equal(3.0 / 5, m.PixelAccuracy, 9);
        Assert.Equal(5, m.Pixels);

        var perfect = new SegmentationMetrics(4, ignoreIndex: 0);   // class 3 never occurs, 0 is ignored: left out of the mean
        perfect.Add(new[] { 1, 2, 2, 1 }, new[] { 1, 2, 2, 0 });
        Assert.Equal(1.0, perfect.MeanIoU, 9);
        Assert.True(double.IsNaN(perfect.PerClassIoU()[3]));
    }

    [Fact]
    public void TensorAndArrayMetricsAgree()
    {
        var a = new SegmentationMetrics(3, 255);
        var b = new SegmentationMetrics(3, 255);
        int[] pred = { 0, 2, 1, 1, 0, 2, 2 }, label = { 0, 2, 2, 1, 255, 1, 2 };
        a.Add(pred, label);
        using var tp = TorchSharp.torch.tensor(pred.Select(x => (long)x).ToArray());
        using var tl = TorchSharp.torch.tensor(label.Select(x => (long)x).ToArray());
        b.Add(tp, tl);
        Assert.Equal(a.PerClassIoU(), b.PerClassIoU());
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Linear)]
    [InlineData(SegmentationHeadKind.Pyramid)]
    public void TrainsOnMaskFoldersAndLearnsTheSquares(SegmentationHeadKind head)
    {
        var dir = TestImages.TempDir("seg");
        try
        {
            var (images, _, masks) = DenseTestData.Write(dir, 8);
            using var data = SegmentationDataset.Load(images, masks, size: 32, numClasses: 3, ignoreValue: 255);
            Assert.Equal(8, data.Count);
            Assert.Equal(new long[] { 8, 32, 32 }, data.Labels.shape);
            using var model = new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(), 3, head, PyramidChannels: 16));
            using var logits = model.forward(data.Images[..2]);
            Assert.Equal(new long[] { 2, 3, 32, 32 }, logits.shape);
            var before = SegmentationTrainer.Evaluate(model, data).PixelAccuracy;
            var result = SegmentationTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 15, BatchSize = 4, Lr = 3e-3, BackboneLrScale = 1, WarmupEpochs = 1 });
            Assert.Equal(30, result.Steps);
            var after = SegmentationTrainer.Evaluate(model, data);
            Assert.True(after.PixelAccuracy > 0.8, $"pixel accuracy {before:P1} -> {after.PixelAccuracy:P1}");
        }
        finally { Directory.Delete(dir, true); }
    }
}
