using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace MaeMl.Tests.Onnx;

/// <summary>UperNet's ONNX pieces: adaptive average pooling as constant averaging matrices (PyTorch's windows for any size) and bilinear
/// resizing by size, on non-square maps whose sides are not multiples of the bins.</summary>
public class AdaptivePoolingOnnxTests(ITestOutputHelper output)
{
    [Fact]
    public void PoolMatrixHasPyTorchsWindows()
    {
        // 5 values to 3 bins: [floor(5i/3), ceil(5(i+1)/3)) = [0,2), [1,4), [3,5)
        float h = 1f / 2, t = 1f / 3;
        Assert.Equal(new[] { h, h, 0, 0, 0, 0, t, t, t, 0, 0, 0, 0, h, h }, DenseOnnxWriter.AdaptivePoolMatrix(5, 3));
        // more bins than values: 2 values to 6 bins repeat them, [0,1) three times then [1,2) three times
        Assert.Equal(new[] { 1f, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1 }, DenseOnnxWriter.AdaptivePoolMatrix(2, 6));
        Assert.Equal(Enumerable.Repeat(1f / 7, 7), DenseOnnxWriter.AdaptivePoolMatrix(7, 1));
        Assert.Throws<ArgumentException>(() => DenseOnnxWriter.AdaptivePoolMatrix(0, 2));
    }

    [Theory]
    [InlineData(5, 7, 3)]
    [InlineData(7, 5, 6)]
    [InlineData(4, 4, 6)]
    [InlineData(11, 3, 2)]
    [InlineData(13, 10, 6)]
    [InlineData(1, 2, 3)]
    public void PoolMatricesEqualTorchAdaptiveAvgPool2d(int height, int width, int bins)
    {
        using var scope = NewDisposeScope();
        var x = randn([2, 3, height, width], generator: new Generator(7));
        var ph = tensor(DenseOnnxWriter.AdaptivePoolMatrix(height, bins)).view(bins, height);
        var pw = tensor(DenseOnnxWriter.AdaptivePoolMatrix(width, bins)).view(bins, width);
        var pooled = matmul(matmul(ph, x), pw.t());                                          // [2, 3, b, b]
        var expected = nn.functional.adaptive_avg_pool2d(x, [bins, bins]);
        Assert.Equal(expected.shape, pooled.shape);
        float diff = (pooled - expected).abs().max().item<float>();
        output.WriteLine($"{height}x{width} -> {bins}x{bins}: max abs diff {diff:E2}");
        Assert.True(diff < 1e-6f, $"max abs diff {diff}");
    }

    [Fact]
    public void OnnxPoolingAndResizeMatchTorchOnNonSquareMaps()
    {
        // a writer over a tiny ViT (its graph needs the pixels fed; only the extra input is used here)
        using var vit = new VisionTransformer(VitClassifierConfig.Backbone(TestModels.Tiny));
        var w = new DenseOnnxWriter(vit.state_dict(), "", TestModels.Tiny);
        const int h = 13, wd = 9;
        var x = w.G.Input("x", "batch", 4, h, wd);
        var outputs = new List<(string Name, Func<Tensor, Tensor> Torch)>();
        foreach (var b in new[] { 1, 2, 3, 6 })
        {
            var up = w.ResizeTo(w.AdaptiveAvgPool2d(x, $"pool{b}", h, wd, b), $"up{b}", h, wd);
            w.G.Output(up, $"ppm{b}", "batch", 4, h, wd);
            outputs.Add(($"ppm{b}", t => nn.functional.interpolate(nn.functional.adaptive_avg_pool2d(t, [b, b]), [h, wd], mode: InterpolationMode.Bilinear, align_corners: false)));
        }
        w.G.Output(w.ResizeTo(x, "down", 7, 5), "down", "batch", 4, 7, 5);
        outputs.Add(("down", t => nn.functional.interpolate(t, [7, 5], mode: InterpolationMode.Bilinear, align_corners: false)));
        var model = Google.Protobuf.MessageExtensions.ToByteArray(w.Finish(new Dictionary<string, string>(), "pooling test"));

        using var scope = NewDisposeScope();
        var input = randn([2, 4, h, wd], generator: new Generator(3));
        using var session = new InferenceSession(model);
        using var results = session.Run([
            NamedOnnxValue.CreateFromTensor(EncoderOnnxNames.Pixels, new DenseTensor(new float[2 * 3 * 16 * 16], [2, 3, 16, 16])),
            NamedOnnxValue.CreateFromTensor("x", new DenseTensor(input.contiguous().data<float>().ToArray(), [2, 4, h, wd]))]);
        foreach (var (name, torchOp) in outputs)
        {
            var onnx = results.First(r => r.Name == name).AsTensor<float>();
            var expected = torchOp(input);
            Assert.Equal(expected.shape.Select(d => (int)d), onnx.Dimensions.ToArray());
            float diff = OnnxTestModels.MaxAbsDiff(expected, onnx.ToArray());
            output.WriteLine($"{name}: max abs diff {diff:E2}");
            Assert.True(diff < 1e-5f, $"{name}: max abs diff {diff}");
        }
    }
}
