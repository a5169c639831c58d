namespace MaeMl.Data;

/// <summary>A training batch as the training loop sees it: its position in the epoch and how many samples it holds.</summary>
internal interface ITrainingBatch
{
    /// <summary>The batch's position in its epoch.</summary>
    int Index { get; }
    /// <summary>Samples in the batch (0 when every one was unreadable).</summary>
    int Count { get; }
}

/// <summary>The batches of an epoch, a pure function of (seed, epoch, batch index), so a run resumed mid-epoch sees the same ones.</summary>
internal interface IBatchSource<out TBatch> where TBatch : ITrainingBatch
{
    /// <summary>Batches in one epoch.</summary>
    int BatchesPerEpoch { get; }
    /// <summary>The batches of <paramref name="epoch"/> from <paramref name="startBatch"/> on, in order.</summary>
    IEnumerable<TBatch> Epoch(int epoch, int startBatch = 0, CancellationToken cancel = default);
    /// <summary>Samples that could not be read so far, with the reason (empty for in-memory data).</summary>
    IReadOnlyDictionary<string, string> Unreadable { get; }
}

/// <summary>A batch of rows of an in-memory dataset: the row indices and a random source for the batch's augmentation, both
/// functions of (seed, epoch, batch index).</summary>
/// <param name="Index">The batch's position in its epoch.</param>
/// <param name="Rows">Row indices into the dataset.</param>
/// <param name="Random">Seeded by (seed, epoch, batch index): flips, jitter and any other per-batch randomness.</param>
internal sealed record RowBatch(int Index, long[] Rows, Random Random) : ITrainingBatch
{
    /// <inheritdoc/>
    public int Count => Rows.Length;
}

/// <summary>
/// Shuffled mini-batches of row indices over <c>count</c> rows held in memory (the dense datasets, cached features): each
/// epoch is a seeded permutation of (seed, epoch); a last partial batch is left out (drop_last) unless it is the only one.
/// </summary>
internal sealed class RowBatches : IBatchSource<RowBatch>
{
    readonly int count, batchSize, seed;
    readonly bool shuffle;

    /// <summary>Batches of <paramref name="batchSize"/> rows (fewer when there are fewer rows) out of <paramref name="count"/>.</summary>
    public RowBatches(int count, int batchSize, int seed, bool shuffle = true)
    {
        if (count <= 0) throw new ArgumentException("No training rows");
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        this.count = count; this.batchSize = Math.Min(batchSize, count); this.seed = seed; this.shuffle = shuffle;
    }

    /// <summary>Rows per batch (the batch size, or the row count when that is smaller).</summary>
    public int BatchSize => batchSize;

    /// <inheritdoc/>
    public int BatchesPerEpoch => count / batchSize;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Unreadable { get; } = new Dictionary<string, string>();

    /// <summary>The row order of an epoch.</summary>
    public long[] Order(int epoch)
    {
        var order = new long[count];
        for (int i = 0; i < count; i++) order[i] = i;
        if (shuffle) new Random(Seeds.MixInt(seed, epoch, 0x0DE5)).Shuffle(order);
        return order;
    }

    /// <inheritdoc/>
    public IEnumerable<RowBatch> Epoch(int epoch, int startBatch = 0, CancellationToken cancel = default)
    {
        var order = Order(epoch);
        for (int b = startBatch; b < BatchesPerEpoch; b++)
        {
            cancel.ThrowIfCancellationRequested();
            yield return new RowBatch(b, order.AsSpan(b * batchSize, batchSize).ToArray(), new Random(Seeds.MixInt(seed, epoch, b, 0xBA7C)));
        }
    }
}
