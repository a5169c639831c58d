using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Pretrained;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using Xunit;

namespace MaeMl.Tests.Pretrained;

/// <summary>Tests that change the current folder or environment variables run alone.</summary>
[CollectionDefinition("ProcessWideState", DisableParallelization = true)]
public sealed class ProcessWideStateCollection;

[Collection("ProcessWideState")]
public class MaePretrainedTests
{
    static string RepoRoot() => TestModels.RepoRoot();

    [Fact]
    public void MissingShippedWeightsFailWithWhatToDoAndMaePretrainedFindsThem()
    {
        // the test project imports MaeMl.targets without MaeMlCopyPretrained: the weights are not copied next to it
        Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, "pretrained", "cifar10-vit-tiny.maeml")));
        var repoPretrained = Path.Combine(RepoRoot(), "pretrained");
        var (cwd, env) = (Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable("MAEML_PRETRAINED"));
        var empty = Directory.CreateTempSubdirectory("maeml-no-weights-").FullName;
        try
        {
            Directory.SetCurrentDirectory(empty);          // outside the repository: no pretrained/ in any parent
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", empty);
            var e = Assert.Throws<FileNotFoundException>(() => MaePretrained.Load("cifar10-vit-tiny"));
            Assert.Contains("cifar10-vit-tiny.maeml", e.Message);
            Assert.Contains("<MaeMlCopyPretrained>true</MaeMlCopyPretrained>", e.Message);
            Assert.Contains("MAEML_PRETRAINED", e.Message);
            Assert.Throws<FileNotFoundException>(() => MaePretrained.EncoderOnnxPath("cifar10-vit-tiny"));

            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", repoPretrained);
            // the encoder ONNX is not shipped: exported from the weights at first use into the cache, then reused
            var onnx = MaePretrained.EncoderOnnxPath("cifar10-vit-tiny");
            Assert.True(File.Exists(onnx), onnx);
            Assert.Equal(File.GetLastWriteTimeUtc(onnx), File.GetLastWriteTimeUtc(MaePretrained.EncoderOnnxPath("cifar10-vit-tiny")));
            Assert.Equal(192, MaeMl.Onnx.EncoderOnnxModelInfo.Read(onnx).OutputSize(MaeMl.Onnx.EncoderPooling.Mean));
            using var mae = MaePretrained.Load("cifar10-vit-tiny");
            Assert.Equal(192, mae.Config.EmbedDim);
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", env);
            Directory.Delete(empty, recursive: true);
        }
    }

    /// <summary>An existing file wins over a shipped name, for Load and ResolveFile (what the CLI uses) alike.</summary>
    [Fact]
    public void AnExistingFileWinsOverAShippedNameOfTheSameSpelling()
    {
        var cwd = Directory.GetCurrentDirectory();
        var dir = Directory.CreateTempSubdirectory("maeml-name-vs-file-").FullName;
        try
        {
            Directory.SetCurrentDirectory(dir);
            torch.manual_seed(0);
            using (var tiny = new MaskedAutoencoderViT(TestModels.Tiny)) MaeCheckpoint.Save(Path.Combine(dir, "cifar10-vit-tiny"), tiny);
            Assert.Equal("cifar10-vit-tiny", MaePretrained.ResolveFile("cifar10-vit-tiny"));
            using var loaded = MaePretrained.Load("cifar10-vit-tiny");
            Assert.Equal(TestModels.Tiny, loaded.Config);      // the file here, not the shipped 192x6 model
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A fine-tuned classifier file loads through <c>MaePretrained.LoadClassifier</c>, and the encoder ONNX derived from it (what
    /// <c>EncoderOnnxPath</c> writes for a shipped classifier) is its fine-tuned encoder: <c>mae_mean</c> = <c>ForwardFeatures</c>
    /// (<c>fc_norm</c> of the mean token), not a MAE's.</summary>
    [Fact]
    public void AClassifierFileLoadsAndGivesItsFineTunedEncoderAsOnnx()
    {
        var dir = Directory.CreateTempSubdirectory("maeml-pretrained-classifier-").FullName;
        try
        {
            var tiny = TestModels.Tiny;
            using var vit = new VisionTransformer(new VitClassifierConfig(tiny, 3, GlobalPool: true));
            using (torch.no_grad()) foreach (var p in vit.parameters()) p.normal_(0, 0.5, new torch.Generator(11));
            var file = Path.Combine(dir, "classifier.maeml");
            ClassifierCheckpoint.Save(file, vit, ["a", "b", "c"]);

            using var loaded = MaePretrained.LoadClassifier(file);
            Assert.Equal(3, loaded.Config.NumClasses);
            Assert.Equal(0, torch.max(torch.abs(loaded.Head!.weight! - vit.Head!.weight!)).item<float>());
            Assert.Throws<InvalidDataException>(() => MaePretrained.Load(file));              // a classifier is not a MAE
            var missing = Assert.Throws<FileNotFoundException>(() => MaePretrained.LoadClassifier(Path.Combine(dir, "none.maeml")));
            Assert.Contains("cifar10-vit-tiny", missing.Message);                            // names what is shipped

            var onnx = Path.Combine(dir, "encoder.onnx");
            VitEncoderOnnxExporter.Save(MaePretrained.BuildEncoderOnnx(file, preset: null), onnx);
            Assert.Equal(32, EncoderOnnxModelInfo.Read(onnx).OutputSize(EncoderPooling.Mean));
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var pixels = ImageNetNormalization.RandomPixels(2, 16, seed: 5);
            vit.eval();
            var expected = vit.ForwardFeatures(ImageNetNormalization.Normalize(pixels)).contiguous().data<float>().ToArray();
            using var session = new InferenceSession(onnx);
            var input = new DenseTensor<float>(pixels.contiguous().data<float>().ToArray(), [2, 3, 16, 16]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(EncoderOnnxNames.Pixels, input)], [EncoderOnnxNames.Output(EncoderPooling.Mean)]);
            var actual = results.Single().AsTensor<float>().ToArray();
            Assert.Equal(expected.Length, actual.Length);
            Assert.True(expected.Zip(actual, (x, y) => Math.Abs(x - y)).Max() < 1e-4f);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The shipped fine-tuned classifier loads by name and classifies the bundled CIFAR-10 test images (100, never trained on;
    /// its full-test-set top-1 is in pretrained/README.md): a wrong head, preset or preprocessing would score near chance (10%).</summary>
    [Fact]
    public void ShippedFineTunedClassifierLoadsByNameAndClassifiesTheBundledImages()
    {
        var env = Environment.GetEnvironmentVariable("MAEML_PRETRAINED");
        try
        {
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", Path.Combine(RepoRoot(), "pretrained"));
            using var model = MaePretrained.LoadClassifier("cifar10-vit-tiny-finetuned");
            Assert.Equal(10, model.Config.NumClasses);
            var folder = ImageFolder.Labelled(Path.Combine(RepoRoot(), "samples", "data", "cifar10-mini", "test"));
            var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.ResizeCenterCrop(32, 1.0), 32, 50, shuffle: false, dropLast: false, seed: 0);
            var metrics = MaeMl.Evaluation.ClassifierEvaluation.Evaluate(model, loader, folder.Classes);
            Assert.Equal(100L, metrics.Count);
            Assert.True(metrics.Top1 >= 0.6, $"top-1 {metrics.Top1:P1} on the bundled test images");
        }
        finally { Environment.SetEnvironmentVariable("MAEML_PRETRAINED", env); }
    }
}
