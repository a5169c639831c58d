using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MaeMl.Data;

/// <summary>A decoded, transformed batch: <see cref="Pixels"/> holds <see cref="Count"/> CHW images back to back.</summary>
/// <param name="Index">The batch's position in its epoch.</param>
/// <param name="Pixels">Normalised float CHW images, the first <see cref="Count"/> x C x S x S values used (the array is sized for a full batch).</param>
/// <param name="Labels">Class index of each image (0 for unlabelled folders); the first <see cref="Count"/> are used.</param>
/// <param name="Count">Images in the batch: the batch size, less any unreadable images left out (and the remainder of a last partial batch).</param>
/// <param name="Channels">Channels per image, C.</param>
/// <param name="Size">Side of the square images in pixels, S.</param>
public sealed record ImageBatch(int Index, float[] Pixels, int[] Labels, int Count, int Channels, int Size) : ITrainingBatch
{
    /// <summary>Images [Count, C, H, W] float32, copied once from <see cref="Pixels"/> into native memory
    /// (no intermediate managed array: the training loop allocates as little as possible).</summary>
    public Tensor ImagesTensor()
    {
        var images = empty(new long[] { Count, Channels, Size, Size }, ScalarType.Float32);
        images.bytes = MemoryMarshal.AsBytes(Pixels.AsSpan(0, Count * Channels * Size * Size));
        return images;
    }

    /// <summary>Labels [Count] int64.</summary>
    public Tensor LabelsTensor() => tensor(Labels.AsSpan(0, Count).ToArray().Select(l => (long)l).ToArray(), new long[] { Count });
}
