using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MaeMl.Data;

/// <summary>A decoded, transformed batch: <see cref="Pixels"/> holds <see cref="Count"/> CHW images back to back.</summary>
public sealed record ImageBatch(int Index, float[] Pixels, int[] Labels, int Count, int Channels, int Size)
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
