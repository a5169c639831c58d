using MaeMl.Detection;
using MaeMl.Checkpoints;
using MaeMl.Segmentation;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class DenseDataAndFileTests : IDisposable
{
    readonly string dir = TestImages.TempDir("dense-data");
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void YoloVocAndCocoLayoutsGiveTheSameBoxesAtTheModelSize()
    {
        var (images, labels, _) = DenseTestData.Write(dir, 3, size: 48);
        var files = Directory.GetFiles(images).OrderBy(p => p).ToList();
        using var yolo = DetectionDataset.FromYolo(images, labels, ["square", "circle"], size: 32);
        var voc = Path.Combine(dir, "voc");
        Directory.CreateDirectory(voc);
        var annotations = new List<string>();
        var imageEntries = new List<string>();
        for (int i = 0; i < files.Count; i++)
        {
            var b = YoloAnnotations.Read(YoloAnnotations.LabelPath(labels, files[i]), 48, 48).Single();
            var name = Path.GetFileName(files[i]);
            File.WriteAllText(Path.Combine(voc, Path.ChangeExtension(name, ".xml")),
                FormattableString.Invariant($"<annotation><filename>{name}</filename><object><name>{(b.Label == 0 ? "square" : "circle")}</name><bndbox><xmin>{b.X0 + 1}</xmin><ymin>{b.Y0 + 1}</ymin><xmax>{b.X1}</xmax><ymax>{b.Y1}</ymax></bndbox></object></annotation>"));
            imageEntries.Add($"{{\"id\":{i},\"file_name\":\"{name}\"}}");
            annotations.Add(FormattableString.Invariant($"{{\"image_id\":{i},\"category_id\":{(b.Label == 0 ? 5 : 9)},\"bbox\":[{b.X0},{b.Y0},{b.Width},{b.Height}]}}"));
        }
        var json = Path.Combine(dir, "coco.json");
        File.WriteAllText(json, $"{{\"images\":[{string.Join(",", imageEntries)}],\"annotations\":[{string.Join(",", annotations)}],\"categories\":[{{\"id\":5,\"name\":\"square\"}},{{\"id\":9,\"name\":\"circle\"}}]}}");
        using var fromVoc = DetectionDataset.FromPascalVoc(images, voc, ["square", "circle"], size: 32);
        using var fromCoco = DetectionDataset.FromCoco(images, json, size: 32);
        Assert.Equal(new[] { "square", "circle" }, fromCoco.ClassNames);
        for (int i = 0; i < files.Count; i++)
        {
            var expected = yolo.Boxes[i].Single();
            Assert.InRange(expected.X1, 0, 32);
            foreach (var other in new[] { fromVoc.Boxes[i].Single(), fromCoco.Boxes[i].Single() })
            {
                Assert.Equal(expected.Label, other.Label);
                Assert.Equal(expected.X0, other.X0, 3);
                Assert.Equal(expected.Y1, other.Y1, 3);
            }
        }
        Assert.True(yolo.Images.allclose(fromCoco.Images));
    }

    [Fact]
    public void DenseModelFilesRoundTripArchitectureClassesAndWeights()
    {
        manual_seed(2);
        using var seg = new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(), 4, SegmentationHeadKind.Pyramid, 8, [2.0, 1.0]));
        seg.eval();
        var path = Path.Combine(dir, "seg.model");
        SegmentationModelFile.Save(seg, path, ["a", "b", "c", "d"], ignoreIndex: 0);
        var (loaded, header) = SegmentationModelFile.Load(path);
        using (loaded)
        using (no_grad())
        {
            Assert.Equal("segmentation", header.Kind);
            Assert.Equal(new[] { "a", "b", "c", "d" }, header.ClassNames);
            Assert.Equal(0, header.IgnoreIndex);
            Assert.Equal(new[] { 2.0, 1.0 }, loaded.Config.Scales);
            using var x = randn(1, 3, 32, 32);
            using var a = seg.forward(x);
            using var b = loaded.forward(x);
            Assert.True(a.allclose(b));
        }
        Assert.Throws<InvalidDataException>(() => DetectionModelFile.Load(path));
        File.WriteAllText(Path.Combine(dir, "junk.model"), "junk");
        Assert.Throws<InvalidDataException>(() => DenseModelFile.ReadHeader(Path.Combine(dir, "junk.model")));
    }
}
