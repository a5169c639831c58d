using MaeMl.Detection;
using MaeMl.Training;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>The dense batch augmentations move masks and boxes with the pixels and are off at their defaults.</summary>
public sealed class DenseAugmentTests
{
    [Fact]
    public void ZoomMovesTheMaskAsTheBoxTransformMovesTheBox()
    {
        var mask = zeros(new long[] { 1, 32, 32 }, ScalarType.Int64);
        mask[TensorIndex.Colon, TensorIndex.Slice(8, 16), TensorIndex.Slice(8, 16)] = ones(1, ScalarType.Int64);
        var window = (X0: 8, Y0: 8, Side: 16);
        using var zoomed = DenseAugment.Zoom(mask, window, 32);
        Assert.Equal(new long[] { 1, 32, 32 }, zoomed.shape);
        Assert.Equal(ScalarType.Int64, zoomed.dtype);
        Assert.Equal(256, zoomed.sum().item<long>());                                 // the 8 x 8 square, doubled each way
        Assert.Equal(256, zoomed[0, TensorIndex.Slice(0, 16), TensorIndex.Slice(0, 16)].sum().item<long>());   // in the top-left 16 x 16
        float k = 32f / window.Side;
        var box = new BoxAnnotation(8, 8, 16, 16, 1).Transform(k, k, -window.X0 * k, -window.Y0 * k);
        Assert.Equal(new BoxAnnotation(0, 0, 16, 16, 1), box);

        using var image = rand(2, 3, 32, 32);
        using var whole = DenseAugment.Zoom(image, (0, 0, 32), 32);
        Assert.True(whole.allclose(image, rtol: 0, atol: 1e-6));
        Assert.Equal((0, 0, 32), DenseAugment.Window(new Random(1), 32, 1.0));
    }

    [Fact]
    public void ColourJitterChangesEachImagesBrightnessAndContrastOnly()
    {
        using var images = randn(3, 3, 8, 8);
        using var same = DenseAugment.Colour(images, new Random(2), 0);
        Assert.True(same.allclose(images, rtol: 0, atol: 1e-6));
        using var jittered = DenseAugment.Colour(images, new Random(2), 0.3);
        var before = images.mean(new long[] { 1, 2, 3 }).data<float>().ToArray();
        var after = jittered.mean(new long[] { 1, 2, 3 }).data<float>().ToArray();
        for (int i = 0; i < 3; i++) Assert.InRange(after[i] - before[i], -0.3f - 1e-5f, 0.3f + 1e-5f);
        Assert.False(jittered.allclose(images));
    }
}
