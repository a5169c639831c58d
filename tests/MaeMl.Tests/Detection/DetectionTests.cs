using MaeMl.Detection;
using MaeMl.Training;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>Runs alone (with the other tests that train): training seeds and draws from torch's global generator.</summary>
[Collection("TorchGlobalRng")]
public class DetectionTests
{
    static BoxAnnotation Gt(float x0, float y0, float x1, float y1, int label = 0) => new(x0, y0, x1, y1, label);
    static DetectedBox Det(float x0, float y0, float x1, float y1, float score, int label = 0) => new(x0, y0, x1, y1, label, score);

    [Fact]
    public void APOfPerfectPredictionsIsOne()
    {
        var gt = new[] { new[] { Gt(0, 0, 10, 10), Gt(20, 20, 40, 40, 1) }, new[] { Gt(5, 5, 15, 25) } };
        var pred = gt.Select(g => g.Select(b => Det(b.X0, b.Y0, b.X1, b.Y1, 0.9f, b.Label)).ToArray()).ToList();
        var e = DetectionMetrics.Evaluate(pred, gt, numClasses: 3);
        Assert.Equal(1.0, e.MAP, 9);
        Assert.Equal(1.0, e.AP50, 9);
        Assert.True(double.IsNaN(e.PerClassAP[2]));   // no ground truth: left out
    }

    [Fact]
    public void APWithAFalsePositiveRankedFirstIsOneHalf()
    {
        var gt = new[] { new[] { Gt(0, 0, 10, 10) } };
        var pred = new List<DetectedBox[]> { new[] { Det(50, 50, 60, 60, 0.9f), Det(0, 0, 10, 10, 0.8f) } };
        Assert.Equal(0.5, DetectionMetrics.Evaluate(pred, gt, 1).AP50, 9);
    }

    [Fact]
    public void APWithAFalsePositiveBetweenTwoTruePositivesFollowsThe101PointRule()
    {
        // TP, FP, TP over 2 boxes: precision 1 up to recall 0.5 (51 points), then 2/3 (50 points)
        var gt = new[] { new[] { Gt(0, 0, 10, 10), Gt(20, 0, 30, 10) } };
        var pred = new List<DetectedBox[]> { new[] { Det(0, 0, 10, 10, 0.9f), Det(50, 50, 60, 60, 0.8f), Det(20, 0, 30, 10, 0.7f) } };
        Assert.Equal((51 + 50 * 2.0 / 3) / 101, DetectionMetrics.Evaluate(pred, gt, 1).AP50, 9);
    }

    [Fact]
    public void APDependsOnTheIouThreshold()
    {
        // IoU 0.575 with the only box: a hit at 0.50 and 0.55, a miss from 0.60 on
        var gt = new[] { new[] { Gt(0, 0, 10, 10) } };
        var pred = new List<DetectedBox[]> { new[] { Det(0, 0, 10, 5.75f, 0.9f) } };
        var e = DetectionMetrics.Evaluate(pred, gt, 1);
        Assert.Equal(1.0, e.AP50, 9);
        Assert.Equal(0.2, e.MAP, 9);
    }

    [Fact]
    public void NmsKeepsTheBestBoxPerClass()
    {
        var kept = BoxOps.Nms(new[] { Det(0, 0, 10, 10, 0.8f), Det(1, 0, 11, 10, 0.9f), Det(1, 0, 11, 10, 0.7f, label: 1), Det(30, 30, 40, 40, 0.5f) }, 0.5f);
        Assert.Equal(new[] { 0.9f, 0.7f, 0.5f }, kept.Select(k => k.Score));
    }

    [Fact]
    public void NmsKeepsTheEarlierOfEqualScoresAndCapsAcrossClasses()
    {
        var boxes = new[] { Det(1, 0, 11, 10, 1f), Det(0, 0, 10, 10, 1f), Det(0, 0, 10, 10, 1f, label: 1), Det(30, 30, 40, 40, 0.5f), Det(50, 50, 60, 60, 0.4f, label: 1) };
        Assert.Equal(new[] { boxes[0], boxes[2], boxes[3], boxes[4] }, BoxOps.Nms(boxes, 0.5f));   // the tie goes to the first of the two class-0 boxes
        Assert.Equal(new[] { boxes[0], boxes[2] }, BoxOps.Nms(boxes, 0.5f, maxKeep: 2));            // the cap counts all classes
    }

    [Fact]
    public void SelectThresholdsThenTakesTheTopKThenNMSThenCapsTheImage()
    {
        // 3 locations x 2 classes, location-major scores; location 1's box overlaps location 0's (IoU 0.8), location 2 is apart
        float[] scores = [0.9f, 0.8f, 0.05f, 0.7f, 0.6f, 0.3f];
        float[] boxes = [0, 0, 4, 4, 0, 0, 4, 5, 20, 20, 24, 24];
        var config = new DetectionConfig(DenseTestData.TinyEncoder(), 2) { ScoreThreshold = 0.05f, PreNmsTopK = 100, MaxDetections = 100 };
        var all = FcosPostprocess.Select(config, scores, boxes, 2, scaleX: 2, scaleY: 0.5f);   // 0.05 is not above the threshold, 0.7 is suppressed by 0.8
        Assert.Equal(new[] { Det(0, 0, 8, 2, 0.9f, 0), Det(0, 0, 8, 2, 0.8f, 1), Det(40, 10, 48, 12, 0.6f, 0), Det(40, 10, 48, 12, 0.3f, 1) }, all);
        Assert.Equal(all[..2], FcosPostprocess.Select(config with { PreNmsTopK = 3 }, scores, boxes, 2, 2, 0.5f));   // 0.6 is 4th before NMS
        Assert.Equal(all[..3], FcosPostprocess.Select(config with { MaxDetections = 3 }, scores, boxes, 2, 2, 0.5f));
    }

    [Fact]
    public void AnnotationFormatsReadTheSameBox()
    {
        var dir = TestImages.TempDir("boxes");
        try
        {
            File.WriteAllText(Path.Combine(dir, "a.txt"), "2 0.25 0.5 0.25 0.5\n");
            var yolo = YoloAnnotations.Read(Path.Combine(dir, "a.txt"), 200, 100);
            Assert.Equal(Gt(25, 25, 75, 75, 2), Assert.Single(yolo));
            Assert.Empty(YoloAnnotations.Read(Path.Combine(dir, "missing.txt"), 200, 100));
            File.WriteAllText(Path.Combine(dir, "bad.txt"), "x 1 2\n");
            Assert.Contains("bad.txt:1", Assert.Throws<InvalidDataException>(() => YoloAnnotations.Read(Path.Combine(dir, "bad.txt"), 10, 10)).Message);

            File.WriteAllText(Path.Combine(dir, "a.xml"), "<annotation><filename>a.jpg</filename><object><name>dog</name><bndbox><xmin>26</xmin><ymin>26</ymin><xmax>75</xmax><ymax>75</ymax></bndbox></object>" +
                "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>");
            var classes = new List<string> { "cat" };
            var (file, voc) = PascalVocAnnotations.Read(Path.Combine(dir, "a.xml"), classes);
            Assert.Equal("a.jpg", file);
            Assert.Equal(Gt(25, 25, 75, 75, 1), Assert.Single(voc));
            Assert.Equal(new[] { "cat", "dog" }, classes);

            File.WriteAllText(Path.Combine(dir, "a.json"), """
                {"images":[{"id":7,"file_name":"a.jpg","width":200,"height":100}],
                 "annotations":[{"image_id":7,"category_id":18,"bbox":[25,25,50,50],"iscrowd":0},{"image_id":7,"category_id":1,"bbox":[0,0,5,5],"iscrowd":1}],
                 "categories":[{"id":18,"name":"dog"},{"id":1,"name":"person"}]}
                """);
            var (coco, names) = CocoAnnotations.Read(Path.Combine(dir, "a.json"));
            Assert.Equal(new[] { "person", "dog" }, names);
            Assert.Equal(Gt(25, 25, 75, 75, 1), Assert.Single(coco["a.jpg"]));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ResizeLetterboxAndFlipMoveTheBoxes()
    {
        using var bitmap = new SkiaSharp.SKBitmap(200, 100);
        var (stretched, sx, sy, dx, dy) = DetectionDataset.Resize(bitmap, 50, DetectionResize.Stretch);
        stretched.Dispose();
        Assert.Equal(Gt(10, 20, 20, 40), Gt(40, 40, 80, 80).Transform(sx, sy, dx, dy));
        var (boxed, lx, ly, ldx, ldy) = DetectionDataset.Resize(bitmap, 50, DetectionResize.Letterbox);
        boxed.Dispose();
        Assert.Equal(Gt(10, 22.5f, 20, 32.5f), Gt(40, 40, 80, 80).Transform(lx, ly, ldx, ldy));   // scale 0.25, 12.5 px bars top and bottom
        using var images = zeros(1, 3, 50, 50);
        images[0, 0, 0, 0] = tensor(1f);
        var (flipped, boxes) = DetectionDataset.FlipHorizontal(images, new[] { new[] { Gt(0, 0, 10, 5) } });
        using (flipped)
        {
            Assert.Equal(1f, flipped[0, 0, 0, 49].item<float>());
            Assert.Equal(Gt(40, 0, 50, 5), Assert.Single(boxes[0]));
        }
    }

    [Fact]
    public void FcosTargetsAssignLocationsInsideTheBoxCentre()
    {
        using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(), 2, PyramidChannels: 16, HeadConvs: 1));
        var (labels, distances) = FcosLoss.Targets(model, new[] { new[] { Gt(8, 8, 24, 24, 1) } });
        var (xs, ys, level) = model.Locations;
        var positives = Enumerable.Range(0, labels.Length).Where(i => labels[i] >= 0).ToList();
        Assert.NotEmpty(positives);
        Assert.All(positives, i =>
        {
            Assert.Equal(1, labels[i]);
            Assert.InRange(xs[i], 8, 24);
            Assert.Equal(xs[i] - 8, distances[4 * i], 4);
            Assert.Equal(24 - ys[i], distances[4 * i + 3], 4);
        });
        Assert.Single(positives.Select(i => level[i]).Distinct());   // max side distance <= 16: one level
    }

    [Fact]
    public void TrainsOnYoloFoldersAndFindsTheSquares()
    {
        var dir = TestImages.TempDir("det");
        try
        {
            var (images, labels, _) = DenseTestData.Write(dir, 8);
            using var data = DetectionDataset.FromYolo(images, labels, ["square", "circle"], size: 32);
            Assert.All(data.Boxes, b => Assert.Single(b));
            using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(), 2, PyramidChannels: 16, HeadConvs: 1));
            var log = new List<string>();
            var result = DetectionTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 40, BatchSize = 4, Lr = 2e-3, BackboneLrScale = 1 }, log.Add);
            Assert.True(double.IsFinite(result.LastEpochLoss));
            var e = DetectionTrainer.Evaluate(model, data);
            Assert.True(e.AP50 > 0.5, $"AP50 {e.AP50:F3}, mAP {e.MAP:F3}, loss {result.LastEpochLoss:F3}\n{string.Join("\n", log)}");
        }
        finally { Directory.Delete(dir, true); }
    }
}
