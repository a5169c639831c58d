using MaeMl.Detection;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>The box-cluster diagnosis: what the detections drawn at a score threshold are.</summary>
public sealed class DetectionBreakdownTests
{
    [Fact]
    public void SecondBoxesOnAFoundObjectAreDuplicatesAndTheRestOtherFalsePositives()
    {
        BoxAnnotation[][] gt =
        [
            [new(10, 10, 50, 50, 0), new(60, 60, 90, 90, 0)],
            [new(0, 0, 20, 20, 1)],
        ];
        DetectedBox[][] pred =
        [
            [
                new(11, 11, 50, 50, 0, 0.9f),   // finds the first object
                new(14, 8, 52, 47, 0, 0.8f),    // a second box on it: IoU 0.76 with the object, taken already -> duplicate
                new(25, 25, 60, 60, 0, 0.5f),   // a shifted box overlapping the found object (IoU 0.28) -> duplicate
                new(100, 0, 120, 20, 0, 0.6f),  // nothing there -> other false positive
                new(60, 60, 90, 90, 1, 0.7f),   // the second object but the wrong class -> other false positive (object missed)
                new(60, 60, 90, 90, 0, 0.2f),   // would find it, but below the threshold
            ],
            [new(0, 0, 20, 21, 1, 0.95f)],
        ];
        var b = DetectionMetrics.Breakdown(pred, gt, minScore: 0.3f);
        Assert.Equal(new DetectionBreakdown(0.3f, 6, 2, 2, 2, 1), b);
        var all = DetectionMetrics.Breakdown(pred, gt, minScore: 0f);
        Assert.Equal(new DetectionBreakdown(0f, 7, 3, 2, 2, 0), all);
        Assert.Throws<ArgumentException>(() => DetectionMetrics.Breakdown(pred, gt[..1], 0.3f));
    }

    [Fact]
    public void ATrainedModelsSelectionCanBeChangedAndIsSavedWithIt()
    {
        var dir = TestImages.TempDir("det-selection");
        try
        {
            using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(), 2, PyramidChannels: 16, HeadConvs: 1));
            var before = model.Config;
            model.UseSelection(0.25f, 0.5f, 7);
            Assert.Equal((0.25f, 0.5f, 7), (model.Config.ScoreThreshold, model.Config.NmsIoU, model.Config.MaxDetections));
            Assert.Equal(before.PreNmsTopK, model.Config.PreNmsTopK);
            Assert.Throws<ArgumentException>(() => model.UseSelection(1.5f, 0.5f, 7));
            Assert.Equal(0.25f, model.Config.ScoreThreshold);   // a refused change leaves the selection as it was
            using (var images = randn(2, 3, 32, 32))
                Assert.All(DetectionTrainer.Predict(model, images), boxes => Assert.True(boxes.Length <= 7 && boxes.All(b => b.Score > 0.25f)));
            var file = Path.Combine(dir, "det.maeml");
            DetectionModelFile.Save(model, file, ["a", "b"]);
            var (loaded, _) = DetectionModelFile.Load(file);
            using (loaded) Assert.Equal((0.25f, 0.5f, 7), (loaded.Config.ScoreThreshold, loaded.Config.NmsIoU, loaded.Config.MaxDetections));
        }
        finally { Directory.Delete(dir, true); }
    }
}
