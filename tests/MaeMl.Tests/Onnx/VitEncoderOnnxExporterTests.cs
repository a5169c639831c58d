using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Onnx;

[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class VitEncoderOnnxExporterTests(ITestOutputHelper output)
{
    static float[] RunOrt(string modelPath, string outputName, Tensor pixels, out int[] shape)
    {
        using var session = new InferenceSession(modelPath);
        var dims = pixels.shape.Select(x => (int)x).ToArray();
        var input = new DenseTensor(OnnxTestModels.ToArray(pixels), dims);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(EncoderOnnxNames.Pixels, input)], [outputName]);
        var t = results.First().AsTensor<float>();
        shape = t.Dimensions.ToArray();
        return t.ToArray();
    }

    [Theory]
    [InlineData(EncoderPooling.Cls)]
    [InlineData(EncoderPooling.Mean)]
    [InlineData(EncoderPooling.Tokens)]
    public void OnnxRuntimeMatchesTorchSharpForEveryPooling(EncoderPooling pooling)
    {
        using var model = OnnxTestModels.RandomMae();
        var path = Path.Combine(Path.GetTempPath(), $"maeml-test-{Guid.NewGuid():N}.onnx");
        try
        {
            VitEncoderOnnxExporter.Export(model, path);
            foreach (var n in new[] { 1, 3 })   // dynamic batch
            {
                using var pixels = OnnxTestModels.RandomPixels(n, 16, seed: n);
                using var expected = OnnxTestModels.Reference(model, pixels, pooling);
                var actual = RunOrt(path, EncoderOnnxNames.Output(pooling), pixels, out var shape);
                Assert.Equal(expected.shape, shape.Select(x => (long)x).ToArray());
                var err = OnnxTestModels.MaxAbsDiff(expected, actual);
                output.WriteLine($"{pooling} batch {n}: max abs {err:E2}");
                Assert.InRange(err, 0, 1e-4);
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void SmallImagePresetMatchesTorchSharp()
    {
        using var model = OnnxTestModels.RandomMae(MaePresets.Get("mae_vit_tiny_patch4_img32"), seed: 3);
        var path = Path.Combine(Path.GetTempPath(), $"maeml-test-{Guid.NewGuid():N}.onnx");
        try
        {
            VitEncoderOnnxExporter.Export(model, path, new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Tokens] });
            using var pixels = OnnxTestModels.RandomPixels(4, 32);
            using var expected = OnnxTestModels.Reference(model, pixels, EncoderPooling.Tokens);
            var err = OnnxTestModels.MaxAbsDiff(expected, RunOrt(path, EncoderOnnxNames.Output(EncoderPooling.Tokens), pixels, out _));
            output.WriteLine($"mae_vit_tiny_patch4_img32 tokens [4, 65, 192]: max abs {err:E2}");
            Assert.InRange(err, 0, 1e-4);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FineTunedVisionTransformerFeaturesMatch(bool globalPool)
    {
        torch.manual_seed(5);
        using var vit = new VisionTransformer(new VitClassifierConfig(TestModels.Tiny, NumClasses: 4, GlobalPool: globalPool));
        OnnxTestModels.Perturb(vit);
        vit.eval();
        var pooling = globalPool ? EncoderPooling.Mean : EncoderPooling.Cls;
        var path = Path.Combine(Path.GetTempPath(), $"maeml-test-{Guid.NewGuid():N}.onnx");
        try
        {
            VitEncoderOnnxExporter.Export(vit, path, new VitEncoderOnnxOptions { Poolings = [pooling] });
            using var pixels = OnnxTestModels.RandomPixels(2, 16);
            using var noGrad = no_grad();
            using var expected = vit.ForwardFeatures(OnnxTestModels.Normalize(pixels));
            var err = OnnxTestModels.MaxAbsDiff(expected, RunOrt(path, EncoderOnnxNames.Output(pooling), pixels, out _));
            output.WriteLine($"ViT global_pool={globalPool} {pooling}: max abs {err:E2}");
            Assert.InRange(err, 0, 1e-4);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void GlobalPoolWeightsRefuseClsPoolingNamingTheMissingNorm()
    {
        using var vit = new VisionTransformer(new VitClassifierConfig(TestModels.Tiny, 0, GlobalPool: true));
        var e = Assert.Throws<ArgumentException>(() => VitEncoderOnnxExporter.Build(vit.state_dict(), vit.Config.Encoder,
            new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Cls] }));
        Assert.Contains("'norm'", e.Message);
    }

    [Fact]
    public void MissingOrMisshapenWeightsAreNamed()
    {
        using var model = OnnxTestModels.RandomMae();
        var sd = model.state_dict();
        sd.Remove("blocks.1.mlp.fc2.bias");
        var e = Assert.Throws<ArgumentException>(() => VitEncoderOnnxExporter.Build(sd, model.Config));
        Assert.Contains("blocks.1.mlp.fc2.bias", e.Message);
        var wider = TestModels.Tiny with { EmbedDim = 64 };
        e = Assert.Throws<ArgumentException>(() => VitEncoderOnnxExporter.Build(model.state_dict(), wider));
        Assert.Contains("patch_embed.proj.weight", e.Message);
    }

    [Fact]
    public void GraphDeclaresOpsetDynamicBatchAndInitializers()
    {
        using var model = OnnxTestModels.RandomMae();
        var onnx = VitEncoderOnnxExporter.Build(model.state_dict(), model.Config);
        Assert.Equal(17, onnx.OpsetImport.Single().Version);
        var input = onnx.Graph.Input.Single();
        Assert.Equal(EncoderOnnxNames.Pixels, input.Name);
        Assert.Equal("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(new[] { "mae_cls", "mae_mean", "mae_tokens" }, onnx.Graph.Output.Select(o => o.Name));
        Assert.Contains(onnx.Graph.Node, n => n.OpType == "Erf");
        Assert.Contains(onnx.Graph.Node, n => n.OpType == "LayerNormalization");
        Assert.DoesNotContain(onnx.Graph.Initializer, t => t.Name.StartsWith("decoder"));
    }
}

/// <summary>ViT-B/16 at 224 (86M parameters, a 343 MB ONNX file): about 10 s and 1.5 GB of memory.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class VitBaseOnnxParityTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "Slow")]
    public void VitBase16At224MatchesTorchSharp()
    {
        torch.manual_seed(0);
        using var model = new MaskedAutoencoderViT(MaePresets.Get("mae_vit_base_patch16"));
        OnnxTestModels.Perturb(model);
        model.eval();
        var path = Path.Combine(Path.GetTempPath(), $"maeml-test-vitb-{Guid.NewGuid():N}.onnx");
        try
        {
            VitEncoderOnnxExporter.Export(model, path);
            var errors = EncoderOnnxParity.MaxAbsDifference(model, path, images: 2);
            foreach (var (pooling, err) in errors)
            {
                output.WriteLine($"ViT-B/16 224 {pooling}: max abs {err:E2}");
                Assert.InRange(err, 0, 1e-4);
            }
            Assert.Equal(3, errors.Count);
        }
        finally { File.Delete(path); }
    }
}
