using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.MLNet;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary><c>ApplyMaeClassifier</c> serves a classifier trained outside ML.NET (a checkpoint, or its ONNX export with the class names in
/// the metadata): <c>Score</c> is the TorchSharp model's softmax and <c>PredictedLabel</c> its arg-max as a key named by the classes, row by
/// row, also after <c>Model.Save</c>/<c>Load</c>; other files are refused with a message naming them.</summary>
[Collection("TorchGlobalRng")]
public sealed class ApplyMaeClassifierTests(ITestOutputHelper output)
{
    static readonly MaeConfig Tiny = TestModels.Tiny;
    static readonly string[] Classes = ["cat", "dog", "fox", "owl"];

    sealed class Row { public string ImagePath { get; set; } = ""; }

    [Fact]
    public void ScoresACheckpointAndItsOnnxExportAsTheTorchSharpModel()
    {
        var dir = TestImages.TempDir("apply-cls");
        var paths = TestImages.Write(Path.Combine(dir, "images"), 16, size: 20, classes: 4, seed: 7);
        torch.manual_seed(3);
        using var vit = new VisionTransformer(new VitClassifierConfig(Tiny, Classes.Length, GlobalPool: true));
        using (torch.no_grad()) { foreach (var p in vit.parameters()) p.normal_(0, 0.5); vit.Head!.weight!.normal_(0, 5); }   // far from the fine-tuning init (head std 2e-5: every logit ~0), so images differ
        var checkpoint = Path.Combine(dir, "classifier.maeml");
        ClassifierCheckpoint.Save(checkpoint, vit, Classes);
        var onnxFile = Path.Combine(dir, "classifier.onnx");
        VitEncoderOnnxExporter.ExportClassifier(vit, onnxFile, new VitEncoderOnnxOptions { ClassNames = Classes });

        var ml = new MLContext(seed: 0);
        var rows = ml.Data.LoadFromEnumerable(paths.Select(p => new Row { ImagePath = p }));
        var images = ml.Transforms.LoadImages("Image", null, nameof(Row.ImagePath)).Fit(rows).Transform(rows);

        // the TorchSharp model on the pixels of ML.NET's own preprocessing (centre crop, RGB planes 0..255)
        vit.eval();
        var pixels = ml.Transforms.ResizeImages("r", 16, 16, "Image", ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center)
            .Append(ml.Transforms.ExtractPixels("p", "r", ImagePixelExtractingEstimator.ColorBits.Rgb, ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true))
            .Fit(images).Transform(images).GetColumn<float[]>("p").ToList();
        float[][] expected;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var x = torch.tensor(pixels.SelectMany(p => p).ToArray()).view(pixels.Count, 3, 16, 16) / 255f;
            x = (x - torch.tensor(ImageNetNormalization.Mean).view(1, 3, 1, 1)) / torch.tensor(ImageNetNormalization.Std).view(1, 3, 1, 1);
            var probs = torch.softmax(vit.forward(x), 1);
            expected = Enumerable.Range(0, pixels.Count).Select(i => probs[i].data<float>().ToArray()).ToArray();
        }
        Assert.True(expected.Select(e => Array.IndexOf(e, e.Max())).Distinct().Count() > 1, "the test model should not predict one class for every image");

        void Check(ITransformer model, string what)
        {
            var scored = model.Transform(images);
            Assert.Null(scored.Schema.GetColumnOrNull(EncoderOnnxNames.Logits));   // temporary columns are dropped
            Assert.Equal((ulong)Classes.Length, Assert.IsType<KeyDataViewType>(scored.Schema["PredictedLabel"].Type).Count);
            var keys = scored.GetColumn<uint>("PredictedLabel").ToList();
            var scores = scored.GetColumn<float[]>("Score").ToList();
            var names = ml.Transforms.Conversion.MapKeyToValue("Name", "PredictedLabel").Fit(scored).Transform(scored).GetColumn<string>("Name").ToList();
            double maxDiff = 0;
            for (int i = 0; i < keys.Count; i++)
            {
                int best = Array.IndexOf(expected[i], expected[i].Max());
                Assert.Equal((uint)(best + 1), keys[i]);
                Assert.Equal(Classes[best], names[i]);
                maxDiff = Math.Max(maxDiff, expected[i].Zip(scores[i]).Max(p => Math.Abs(p.First - p.Second)));
            }
            Assert.True(maxDiff <= 1e-5, $"{what}: Score differs from the TorchSharp softmax by {maxDiff}");
            output.WriteLine($"{what}: {keys.Count} rows, PredictedLabel = TorchSharp's arg-max on all, Score within {maxDiff:E1}");
        }

        foreach (var (file, what) in new[] { (checkpoint, "checkpoint"), (onnxFile, "ONNX export") })
        {
            var estimator = ml.Transforms.ApplyMaeClassifier(file);
            Assert.Equal(Classes, estimator.ClassNames);
            var shapeOf = typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!;
            var shape = estimator.GetOutputSchema((SchemaShape)shapeOf.Invoke(null, [images.Schema])!);
            Assert.Contains(shape, c => c.Name == "PredictedLabel" && c.IsKey && c.Kind == SchemaShape.Column.VectorKind.Scalar);
            Assert.Contains(shape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector);
            var model = estimator.Fit(images);
            Check(model, what);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(model, images.Schema, zip);
            Check(new MLContext().Model.Load(zip, out _), what + ", reloaded");
        }

        // given names win over the file's; other files are refused, naming them
        Assert.Equal(["a", "b", "c", "d"], ml.Transforms.ApplyMaeClassifier(checkpoint, ["a", "b", "c", "d"]).ClassNames);
        var wrongCount = Assert.Throws<ArgumentException>(() => ml.Transforms.ApplyMaeClassifier(checkpoint, ["a", "b"]));
        Assert.Contains("2 class names for the 4 classes", wrongCount.Message);
        var mae = Path.Combine(dir, "mae.maeml");
        using (var m = new MaskedAutoencoderViT(Tiny)) MaeCheckpoint.Save(mae, m);
        Assert.Contains(mae, Assert.Throws<InvalidDataException>(() => ml.Transforms.ApplyMaeClassifier(mae)).Message);
        var encoderOnly = Path.Combine(dir, "encoder.onnx");
        VitEncoderOnnxExporter.Export(vit, encoderOnly, new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Mean] });
        Assert.Contains("not a image_classification model", Assert.Throws<InvalidDataException>(() => ml.Transforms.ApplyMaeClassifier(encoderOnly)).Message);
        Assert.Throws<FileNotFoundException>(() => ml.Transforms.ApplyMaeClassifier(Path.Combine(dir, "missing.maeml")));
    }
}
